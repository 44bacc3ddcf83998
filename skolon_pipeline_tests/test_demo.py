"""The demo registry drop (skolon_pipeline.demo): deterministic, in every accepted file form, made-up people
only, and with a deliberate defect for every reason code of CONTRACT §4."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from skolon_pipeline.demo import (
    DEFECTS,
    DEMO_DROP_DATE,
    DEMO_NIGHT,
    DEMO_SOURCE_ID,
    NOT_IN_DEMO,
    PERSONS_PER_PAGE,
    PROTECTED_PERSON_IDS,
    QUIRKS,
    SCHOOL_YEAR,
    SOURCES_YAML,
    YEAR_END,
    YEAR_START,
    generate_demo,
)
from skolon_pipeline_tests.contract import REASON_CODES

REPO = Path(__file__).resolve().parents[1]
BOM = b"\xef\xbb\xbf"

# DEFECTS entries for records that must reach the roster.
INCLUDED_MARKERS = {"LOOKAHEAD_INCLUDED", "EXACT_REPEAT"}


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def load(path: Path):
    raw = path.read_bytes()
    return json.loads(raw.removeprefix(BOM).decode("utf-8"))


def records(value) -> list[dict]:
    return value if isinstance(value, list) else value["data"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The drop folder of a scale=1 demo."""
    return generate_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def drop(demo) -> dict[str, list[dict]]:
    out = {name: records(load(demo / f"{name}.json")) for name in ("organisations", "duties", "groups", "activities")}
    out["persons"] = [r for page in sorted((demo / "persons").glob("*.json")) for r in records(load(page))]
    return out


def test_generating_twice_gives_identical_bytes(tmp_path):
    a = generate_demo(tmp_path / "a")
    generate_demo(tmp_path / "b")
    assert a.relative_to(tmp_path / "a") == Path("registries", DEMO_SOURCE_ID, DEMO_DROP_DATE.isoformat())
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_existing_drop_is_replaced(tmp_path):
    drop = generate_demo(tmp_path)
    (drop / "placements.json").write_text("[]")
    (drop / "persons" / "page-099.json").write_text("[]")
    assert generate_demo(tmp_path) == drop
    assert not (drop / "placements.json").exists()
    assert not (drop / "persons" / "page-099.json").exists()


def test_scale_two_about_doubles_the_people(tmp_path, drop):
    bigger = generate_demo(tmp_path, scale=2)
    persons = [r for page in sorted((bigger / "persons").glob("*.json")) for r in records(load(page))]
    ratio = len(persons) / len(drop["persons"])
    assert 1.8 <= ratio <= 2.2
    schools = [o for o in records(load(bigger / "organisations.json")) if o["organisationType"] == "Skolenhet"]
    assert len(schools) == 6
    with pytest.raises(ValueError):
        generate_demo(tmp_path, scale=0)


def test_every_file_form_is_exercised(demo):
    names = sorted(p.name for p in demo.iterdir())
    assert names == [
        "MADE-UP-DEMO-DATA.txt",
        "activities.json",
        "duties.json",
        "groups.json",
        "organisations.json",
        "persons",
    ]
    for name in ("organisations", "duties"):
        raw = (demo / f"{name}.json").read_bytes()
        assert not raw.startswith(BOM) and raw.endswith(b"\n")
        page = json.loads(raw)
        assert set(page) == {"data", "pageToken"} and page["pageToken"] is None
    groups = (demo / "groups.json").read_bytes()
    assert groups.startswith(BOM)
    assert json.loads(groups[len(BOM) :])["pageToken"] is None
    assert isinstance(json.loads((demo / "activities.json").read_bytes()), list)

    pages = sorted((demo / "persons").iterdir())
    assert [p.name for p in pages] == [f"page-{n:03d}.json" for n in range(1, len(pages) + 1)]
    assert len(pages) >= 5
    for n, path in enumerate(pages, start=1):
        page = json.loads(path.read_bytes())
        assert set(page) == {"data", "pageToken"}
        assert 0 < len(page["data"]) <= PERSONS_PER_PAGE
        if n < len(pages):
            assert len(page["data"]) == PERSONS_PER_PAGE
            assert isinstance(page["pageToken"], str) and page["pageToken"]
        else:
            assert page["pageToken"] is None

    # The repeated person records sit in two different page files.
    pages_of: dict[str, list[int]] = {}
    for n, path in enumerate(pages, start=1):
        for record in json.loads(path.read_bytes())["data"]:
            pages_of.setdefault(record["id"], []).append(n)
    repeated = {pid: found for pid, found in pages_of.items() if len(found) > 1}
    expected = {d.record_ids[0] for d in DEFECTS if d.code in ("DUPLICATE_ID", "EXACT_REPEAT")}
    assert set(repeated) == expected
    assert all(len(set(found)) == 2 for found in repeated.values())


def test_sources_yaml(demo):
    from skolon_pipeline.config import load_installation

    data_dir = demo.parents[2]
    assert (data_dir / "sources.yaml").read_text(encoding="utf-8") == SOURCES_YAML
    installation = load_installation(data_dir)
    (source,) = installation.sources
    assert (source.id, source.format, source.root) == (DEMO_SOURCE_ID, "ss12000", demo.parent.resolve())
    assert installation.timezone == "Europe/Stockholm"
    assert source.rules.lookahead_days == 30
    assert [d.isoformat() for d in source.rules.term_starts] == [f"{SCHOOL_YEAR}-08-17", f"{SCHOOL_YEAR + 1}-01-11"]
    assert source.rules.school_email_domains == ("lindby.se", "elev.lindby.se")
    assert source.rules.student_requires_group is False  # why NO_ACTIVE_GROUP is in NOT_IN_DEMO


def test_the_scenario_derives_from_the_school_year():
    """Moving SCHOOL_YEAR moves every date; the demo night must be in the past, or Dagster cannot run it."""
    assert SCHOOL_YEAR == 2025
    assert (YEAR_START, YEAR_END) == (dt.date(SCHOOL_YEAR, 8, 17), dt.date(SCHOOL_YEAR + 1, 6, 11))
    assert DEMO_DROP_DATE == dt.date(SCHOOL_YEAR, 12, 14)
    assert DEMO_NIGHT == DEMO_DROP_DATE + dt.timedelta(days=1)
    assert YEAR_START < DEMO_NIGHT < YEAR_END
    assert DEMO_NIGHT < dt.date.today()


def test_dates_fit_the_drop(drop):
    """Record timestamps lie before the drop date; students were born 6-20 years before the school year."""
    day_before = (DEMO_DROP_DATE - dt.timedelta(days=1)).isoformat()
    for entity in drop.values():
        for r in entity:
            created, modified = r["meta"]["created"][:10], r["meta"]["modified"][:10]
            assert created <= modified <= day_before
    for p in drop["persons"]:
        assert p["civicNo"]["value"][:8] == p["birthDate"].replace("-", "")
        if p.get("enrolments"):
            assert SCHOOL_YEAR - 20 <= int(p["birthDate"][:4]) <= SCHOOL_YEAR - 6


def test_civic_numbers_are_temporary_numbers_only(drop):
    numbers = [p["civicNo"]["value"] for p in drop["persons"]]
    assert all(re.fullmatch(r"\d{8}TF\d{2}", n) for n in numbers)
    unique_people = {p["id"]: p["civicNo"]["value"] for p in drop["persons"]}
    assert len(set(unique_people.values())) == len(unique_people)


def test_shape(drop):
    orgs = {o["id"]: o for o in drop["organisations"]}
    by_type = Counter(o["organisationType"] for o in orgs.values())
    assert by_type == {"Huvudman": 1, "Förvaltning": 1, "Skola": 1, "Skolenhet": 3}
    schools = {o["displayName"]: o for o in orgs.values() if o["organisationType"] == "Skolenhet"}
    assert {n: s["schoolTypes"] for n, s in schools.items()} == {
        "Lindbyskolan": ["GR"],
        "Norrby skola": ["GR"],
        "Lindby gymnasium": ["GY"],
    }
    forvaltning = next(o for o in orgs.values() if o["organisationType"] == "Förvaltning")
    assert orgs[forvaltning["parentOrganisation"]["id"]]["displayName"] == "Lindby kommun"
    assert all(s["parentOrganisation"]["id"] == forvaltning["id"] for s in schools.values())
    assert all(re.fullmatch(r"\d{8}", s["schoolUnitCode"]) for s in schools.values())
    for entity in drop.values():
        assert all(set(r["meta"]) == {"created", "modified"} for r in entity)

    persons = {p["id"]: p for p in drop["persons"]}
    duty_people = {d["person"]["id"] for d in drop["duties"]}
    students = [p for p in persons.values() if p.get("enrolments")]
    guardian_ids = {r["person"]["id"] for p in students for r in p["responsibles"]}
    assert 450 <= len(students) <= 550
    assert 40 <= len(duty_people) <= 60
    assert all(1 <= len(p["responsibles"]) <= 2 for p in students)
    assert all(r["relationType"] == "Vårdnadshavare" for p in students for r in p["responsibles"])
    for gid in guardian_ids:  # guardians are present, and only guardians
        g = persons[gid]
        assert "enrolments" not in g and gid not in duty_people
        assert [e["type"] for e in g["emails"]] == ["Privat"]
    assert all(p.get("addresses") and p.get("phoneNumbers") for p in persons.values())
    assert any(re.search("[åäöÅÄÖ]", p["familyName"] + p["givenName"]) for p in persons.values())
    assert {persons[pid]["securityMarking"] for pid in PROTECTED_PERSON_IDS} == {
        "Skyddad folkbokföring",
        "Sekretessmarkering",
    }

    # Each student in exactly one class, and in 3-6 teaching groups (a few defects aside).
    klass_of: Counter[str] = Counter()
    teaching_of: Counter[str] = Counter()
    for g in drop["groups"]:
        for m in g.get("groupMemberships", []):
            pid = m["person"]["id"].lower()
            if g["groupType"] == "Klass":
                klass_of[pid] += 1
            elif g["groupType"].lower() == "undervisning":
                teaching_of[pid] += 1
    assert all(klass_of[p["id"]] == 1 for p in students)
    in_range = sum(3 <= teaching_of[p["id"]] <= 6 for p in students)
    assert in_range >= 0.97 * len(students)

    # One activity per teaching group, with 1-2 teachers.
    activity_groups = Counter(g["id"] for a in drop["activities"] for g in a["groups"])
    teaching_groups = [g for g in drop["groups"] if g["groupType"].lower() == "undervisning"]
    assert all(activity_groups[g["id"]] == 1 for g in teaching_groups)
    assert all(1 <= len(a["teachers"]) <= 2 for a in drop["activities"])
    mentors = [r for d in drop["duties"] for r in d.get("assignmentRole", []) if r["assignmentRoleType"] == "Mentor"]
    assert len(mentors) >= sum(g["groupType"] == "Klass" for g in drop["groups"])


def test_ids_are_lower_case_except_the_deliberate_ones(drop):
    mixed: list[str] = []

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "id" and isinstance(item, str) and item != item.lower():
                    mixed.append(item.lower())
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(drop)
    assert len(mixed) == 2
    quirk_ids = {rid for q in QUIRKS if q.code == "MIXED_CASE_ID" for rid in q.record_ids}
    student = next(rid for rid in quirk_ids if "/" not in rid)
    enroled_at = next(p for p in drop["persons"] if p["id"] == student)["enrolments"][0]["enroledAt"]["id"]
    assert enroled_at.lower() in mixed
    assert any(rid.endswith("/" + m) for rid in quirk_ids for m in mixed)


def test_defects_cover_every_reason_code():
    assert set(NOT_IN_DEMO) <= REASON_CODES
    codes = {d.code for d in DEFECTS}
    assert codes - INCLUDED_MARKERS <= REASON_CODES
    assert REASON_CODES - set(NOT_IN_DEMO) <= codes
    assert INCLUDED_MARKERS <= codes
    for d in DEFECTS:
        assert d.description and d.record_ids
        assert all(rid == rid.lower() for rid in d.record_ids)


def test_every_reason_code_occurs_on_the_demo_night(demo, tmp_path):
    """Runs the reader and the rules (no Dagster) on the demo night: each defect gets its code."""
    from skolon_pipeline.config import load_installation
    from skolon_pipeline.rules.conservation import conservation_gaps
    from skolon_pipeline.rules.engine import run_rules
    from skolon_pipeline.sources.civic import is_demo_drop, pseudonym_key
    from skolon_pipeline.sources.ss12000 import extract_ss12000
    from skolon_pipeline.validate.canonical import validate_staging

    staging = tmp_path / "staging.duckdb"
    with duckdb.connect(str(staging)) as con:
        extract_ss12000(con, DEMO_SOURCE_ID, demo, key=pseudonym_key({}, demo_drop=is_demo_drop(demo)))
        validate_staging(con, DEMO_SOURCE_ID)
    installation = load_installation(demo.parents[2])
    with duckdb.connect() as con:
        run_rules(con, list(installation.sources), {DEMO_SOURCE_ID: staging}, DEMO_NIGHT)
        exclusions = con.execute("SELECT record_id, reason_code, visible_from FROM out_exclusions").fetchall()
        users = {u for (u,) in con.execute("SELECT user_id FROM out_users").fetchall()}
        warnings = {(r, c) for r, c in con.execute("SELECT record_id, code FROM out_warnings").fetchall()}
        gaps = conservation_gaps(con)

    assert {code for _, code, _ in exclusions} == REASON_CODES - set(NOT_IN_DEMO)
    reasons: dict[str, set[str]] = {}
    for record_id, code, _ in exclusions:
        reasons.setdefault(record_id, set()).add(code)
    for d in DEFECTS:
        for rid in d.record_ids:
            if d.code in INCLUDED_MARKERS:
                assert rid in users and rid not in reasons, d
            else:
                assert d.code in reasons.get(rid, set()), d
    visible = {(rid, code): v for rid, code, v in exclusions}
    for d in DEFECTS:
        match = re.search(r"visible_from (\d{4}-\d{2}-\d{2})", d.description)
        if match:
            assert visible[(d.record_ids[0], d.code)].isoformat() == match.group(1)
    assert set(PROTECTED_PERSON_IDS) <= users
    for q in QUIRKS:
        if q.code in ("TEACHER_BY_PERSON", "ENUM_CASE"):
            assert (q.record_ids[0], q.code) in warnings
    assert all(gap["missing"] == 0 for gap in gaps.values()), gaps


def test_committed_demo_is_current(tmp_path):
    committed = REPO / "data"
    if not (committed / "sources.yaml").exists():
        pytest.skip("no committed demo yet: run generate_demo(Path('data')) in the project root")
    generate_demo(tmp_path)
    drop = Path("registries", DEMO_SOURCE_ID, DEMO_DROP_DATE.isoformat())
    assert (committed / "sources.yaml").read_bytes() == (tmp_path / "sources.yaml").read_bytes()
    assert tree(committed / drop) == tree(tmp_path / drop), (
        "data/ is out of date: run generate_demo(Path('data')) in the project root"
    )
