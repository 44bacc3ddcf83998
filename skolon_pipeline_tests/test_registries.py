"""Issue 12: SS12000 exports shaped as real registries send them (CONTRACT §1-4).

What the rules make of the dates and organisation trees registries send is tested from canonical rows
(`canon`, `evaluate_rows`: no drop); what the reader makes of a drop's shapes (ids that are not strings, lists
that are not lists, page chains) from small hand-built drops without Dagster (`run_registry`); only what only a
Dagster run shows (a night of an old year through the partitions) goes through `skolon-pipeline run`.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from skolon_pipeline import cli
from skolon_pipeline.config import load_installation
from skolon_pipeline.defs.partitions import nightly_partitions
from skolon_pipeline.sources.drops import SourceError
from skolon_pipeline_tests.canonical_rows import TERM_START
from skolon_pipeline_tests.registry import Registry, write_sources


@pytest.fixture
def run_registry(evaluate_registry):
    """These tests read what the rules make of a drop: nothing they assert needs the night published."""
    return evaluate_registry


def _conserved(night) -> None:
    assert all(g["missing"] == 0 for g in night.conservation.values()), night.conservation


@pytest.fixture
def reg():
    return Registry()


# ─── Dates as registries write them ──────────────────────────────────────────────────────────────────────


def test_far_end_dates_are_dates_not_invalid_records(canon, evaluate_rows):
    school = canon.school()
    student = canon.student(school, end="9999-12-31")
    klass = canon.group(school, end="9999-12-31")
    canon.member(klass, student, end="9999-12-31")
    teacher, duty = canon.staff(school, end="9999-12-31")
    canon.assign(klass, teacher, duty, start=TERM_START, end="9999-12-31")  # an activity ending 9999-12-31

    night = evaluate_rows(canon)

    assert night.users() == {student: "student", teacher: "teacher"}
    assert night.query("SELECT count(*) FROM nightly.exclusions")[0][0] == 0
    far = dt.date(9999, 12, 31)
    assert night.query("SELECT end_date FROM nightly.groups") == [(far,)]
    assert set(night.query("SELECT user_id, end_date FROM nightly.memberships")) == {(student, far), (teacher, far)}
    assert set(night.query("SELECT user_id, end_date FROM nightly.school_affiliations")) == {
        (student, far),
        (teacher, far),
    }
    _conserved(night)


@pytest.mark.parametrize("bad", ["2026-02-29", "2026-13-01", "0000-01-01", "20260101", "9999-12-32"])
def test_impossible_dates_stay_invalid(canon, evaluate_rows, bad):
    student = canon.student(canon.school(), end=bad)
    night = evaluate_rows(canon)
    assert night.reasons(student) == {"INVALID_RECORD"}
    assert "enrolments[1].end_date failed iso_date" in night.exclusion(student, "INVALID_RECORD")["detail"]


def test_an_end_before_a_far_start_is_still_caught(canon, evaluate_rows):
    student = canon.student(canon.school(), start="9999-01-01", end="2300-01-01")
    night = evaluate_rows(canon)
    assert "end_not_before_start" in night.exclusion(student, "INVALID_RECORD")["detail"]


def test_far_end_dates_in_oneroster_are_dates(tmp_path):
    from skolon_pipeline import night as stages
    from skolon_pipeline_tests.conftest import rules_night
    from skolon_pipeline_tests.oneroster_drop import OneRosterDrop, oneroster_source

    drop = OneRosterDrop()
    ids = drop.basic()
    open_term = drop.session("Tills vidare", "2026-08-17", "9999-12-31")
    drop.rows["classes"][0]["termSourcedIds"] = open_term
    drop.rows["enrollments"][1]["endDate"] = "9999-12-31"  # exclusive: the last day is 9999-12-30
    drop.rows["roles"][1]["endDate"] = "9999-12-31"
    data_dir = tmp_path / "data"
    drop.write(data_dir / "registries" / "or" / "2026-12-01")
    write_sources(data_dir, [oneroster_source()])
    night_date = dt.date(2026, 12, 1)  # the rules' output is all it reads: nothing is published
    night = rules_night(
        stages.evaluate_night(load_installation(data_dir), night_date, tmp_path / "staging"), night_date
    )
    _conserved(night)
    assert night.query("SELECT count(*) FROM nightly.exclusions")[0][0] == 0
    assert set(night.users()) == {f"or:{ids[k]}" for k in ("teacher", "student", "student2")}
    last = dt.date(9999, 12, 30)
    assert night.query("SELECT end_date FROM nightly.groups") == [(last,)]
    assert night.query("SELECT end_date FROM nightly.memberships WHERE user_id = ?", [f"or:{ids['student']}"]) == [
        (last,)
    ]


# ─── first_night: any night, any year ────────────────────────────────────────────────────────────────────


def test_first_night_defaults_to_2015_and_is_read_from_sources_yaml(tmp_path):
    write_sources(tmp_path, [{"id": "a", "format": "ss12000", "path": "registries/a"}])
    installation = load_installation(tmp_path)
    assert installation.first_night == dt.date(2015, 1, 1)
    partitions = nightly_partitions(installation.timezone, installation.first_night)
    assert partitions.get_first_partition_key() == "2015-01-01"

    text = (tmp_path / "sources.yaml").read_text(encoding="utf-8")
    (tmp_path / "sources.yaml").write_text('first_night: "2009-08-01"\n' + text, encoding="utf-8")
    installation = load_installation(tmp_path)
    assert installation.first_night == dt.date(2009, 8, 1)
    assert nightly_partitions(installation.timezone, installation.first_night).get_first_partition_key() == "2009-08-01"


def test_a_bad_first_night_is_a_configuration_error(tmp_path, capsys):
    write_sources(tmp_path, [{"id": "a", "format": "ss12000", "path": "registries/a"}])
    text = (tmp_path / "sources.yaml").read_text(encoding="utf-8")
    (tmp_path / "sources.yaml").write_text('first_night: "2015-02-30"\n' + text, encoding="utf-8")
    assert cli.main(["run", "--as-of", "2020-01-01", "--data-dir", str(tmp_path)]) == cli.EXIT_USAGE
    assert "first_night: '2015-02-30' is not a date" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("night", "message"),
    [
        ("2014-12-31", "night 2014-12-31 is before first_night (2015-01-01, sources.yaml)"),
        ("2999-01-01", "night 2999-01-01 is in the future"),
    ],
)
def test_nights_outside_the_partitions_are_refused_in_one_line(tmp_path, capsys, monkeypatch, night, message):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    Registry().write(tmp_path / "data", drop_date="2014-01-01")
    code = cli.main(
        [
            "run",
            "--as-of",
            night,
            "--data-dir",
            str(tmp_path / "data"),
            "--warehouse",
            str(tmp_path / "wh.duckdb"),
            "--export-dir",
            str(tmp_path / "exports"),
        ]
    )
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert message in err and len(err.strip().splitlines()) == 1
    assert "CheckError" not in err and "Traceback" not in err
    assert not (tmp_path / "wh.duckdb").exists()


@pytest.mark.slow
def test_a_night_in_2019_runs_through_dagster(tmp_path, capsys, monkeypatch):
    """An SS12000 drop from 2019 is a partition like any other (it used to end in `CheckError: Invariant failed`)."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for name in ("SKOLON_DATA_DIR", "SKOLON_WAREHOUSE", "SKOLON_EXPORT_DIR"):
        monkeypatch.delenv(name, raising=False)
    reg = Registry()
    school = reg.school()
    student = reg.student(school, start="2019-08-19", end="2020-06-12")
    klass = reg.group(school, start="2019-08-19", end="2020-06-12", members=[student])
    teacher, _ = reg.teach(school, klass, start="2015-08-01")
    reg.activities[-1].update(startDate="2019-08-19", endDate="2020-06-12")
    reg.write(tmp_path / "data", drop_date="2019-09-02")
    warehouse = tmp_path / "wh.duckdb"
    code = cli.main(
        [
            "run",
            "--as-of",
            "2019-09-03",
            "--data-dir",
            str(tmp_path / "data"),
            "--warehouse",
            str(warehouse),
            "--export-dir",
            str(tmp_path / "exports"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        users = dict(con.execute("SELECT user_id, role FROM roster.users").fetchall())
        as_of = con.execute("SELECT DISTINCT as_of FROM roster.users").fetchall()
    assert users == {student["id"]: "student", teacher["id"]: "teacher"}
    assert as_of == [(dt.date(2019, 9, 3),)]


# ─── Organisations above school units (CONTRACT §3 "School references") ─────────────────────────────────


class Skola:
    """A Skola (as Edlevo and others send it) with a GR and a GY school unit below it."""

    def __init__(self, canon):
        self.skola = canon.org("Ekbacken", "Skola", parent=canon.authority)
        self.gr = canon.org(
            "Ekbackens grundskola", "Skolenhet", parent=self.skola, school_unit_code="11111111", school_types=["GR"]
        )
        self.gy = canon.org(
            "Ekbackens gymnasium", "Skolenhet", parent=self.skola, school_unit_code="22222222", school_types=["GY"]
        )


def _resolved(night) -> dict[str, str]:
    return {r: d for r, c, d in night.warnings() if c == "SCHOOL_RESOLVED_FROM_PARENT"}


def test_duties_on_a_skola_count_where_the_person_teaches_else_at_every_unit(canon, evaluate_rows):
    s = Skola(canon)
    gr_class = canon.group(s.gr, members=[canon.student(s.gr)], name="7A")
    gy_course = canon.group(s.gy, group_type="Undervisning", members=[canon.student(s.gy)], name="MA1c")
    both, both_duty = canon.staff(s.skola)
    gy_only, gy_duty = canon.staff(s.skola)
    principal, principal_duty = canon.staff(s.skola, role="Rektor")
    # the activities (on the Skola too: their organisation decides nothing, their groups do)
    for group, teacher, duty in (
        (gr_class, both, both_duty),
        (gy_course, both, both_duty),
        (gy_course, gy_only, gy_duty),
    ):
        canon.assign(group, teacher, duty)

    night = evaluate_rows(canon)

    assert night.users() == {
        **{u: "student" for u in night.users() if night.users()[u] == "student"},
        both: "teacher",
        gy_only: "teacher",
        principal: "staff",
    }
    affiliations = set(
        night.query("SELECT user_id, school_id, role FROM nightly.school_affiliations WHERE role <> 'student'")
    )
    assert affiliations == {
        (both, s.gr, "teacher"),
        (both, s.gy, "teacher"),
        (gy_only, s.gy, "teacher"),
        (principal, s.gr, "staff"),
        (principal, s.gy, "staff"),
    }
    assert {(gr_class, both, "teacher"), (gy_course, both, "teacher"), (gy_course, gy_only, "teacher")} <= (
        night.memberships()
    )
    assert night.query("SELECT count(*) FROM nightly.exclusions")[0][0] == 0
    resolved = _resolved(night)
    assert set(resolved) == {both_duty, gy_duty, principal_duty}
    assert f"organisation {s.skola} (Ekbacken, Skola)" in resolved[gy_duty]
    assert f"counted at {s.gy} (Ekbackens gymnasium), where the person teaches" in resolved[gy_duty]
    assert s.gr not in resolved[gy_duty].split("counted at")[1]
    assert "every unit below it" in resolved[principal_duty]
    assert s.gr in resolved[principal_duty] and s.gy in resolved[principal_duty]
    _conserved(night)


def test_a_teacher_on_a_skola_who_teaches_nothing_needs_an_assignment_not_a_school(canon, evaluate_rows):
    s = Skola(canon)
    idle, _ = canon.staff(s.skola)
    night = evaluate_rows(canon)
    assert night.reasons(idle) == {"NO_GROUP_ASSIGNMENT"}


def test_a_group_on_a_skola_counts_at_the_unit_of_its_school_type(canon, evaluate_rows):
    s = Skola(canon)
    student = canon.student(s.gy)
    course = canon.group(s.skola, group_type="Undervisning", school_type="GY", members=[student])
    _teacher, _ = canon.teach(s.gy, course)
    pre_member = canon.student(s.gr)
    pre = canon.group(s.skola, school_type="FS", members=[pre_member], name="Förskoleklass")
    untyped = canon.group(s.skola, name="Okänd")

    night = evaluate_rows(canon)

    assert night.query("SELECT group_id, school_id FROM nightly.groups") == [(course, s.gy)]
    assert (course, student, "student") in night.memberships()
    assert f"counted at {s.gy} (Ekbackens gymnasium), the unit with schoolType GY" in _resolved(night)[course]
    for group, why in ((pre, "none of them has schoolType FS"), (untyped, "no schoolType is given")):
        row = night.exclusion(group, "GROUP_UNKNOWN_SCHOOL")
        assert why in row["detail"]
        assert (
            f"{s.gr} (Ekbackens grundskola) [GR]" in row["detail"]
            and f"{s.gy} (Ekbackens gymnasium) [GY]" in row["detail"]
        )
        assert "set organisation to the school unit" in row["detail"]
        assert row["school_id"] == s.skola
    assert night.reasons(f"{pre}/{pre_member}") == {"GROUP_EXCLUDED"}
    _conserved(night)


def test_enrolments_on_a_skola(canon, evaluate_rows):
    s = Skola(canon)
    single = canon.org("Lillskolan", "Skola", parent=canon.authority)
    only_unit = canon.org("Lillskolan F-6", "Skolenhet", parent=single, school_types=["GR"])
    untyped, typed, alone = canon.person(), canon.person(), canon.person()
    canon.enrol(untyped, s.skola, start="2026-08-17", end=None, school_type=None)
    canon.enrol(typed, s.skola, start="2026-08-17", end=None, school_type="gy")
    canon.enrol(alone, single, start="2026-08-17", end=None, school_type=None)

    night = evaluate_rows(canon)

    assert night.users() == {typed: "student", alone: "student"}
    assert set(night.query("SELECT user_id, school_id FROM nightly.school_affiliations")) == {
        (typed, s.gy),
        (alone, only_unit),
    }
    resolved = _resolved(night)
    assert "enrolments[1].enroledAt" in resolved[typed] and "the unit with schoolType GY" in resolved[typed]
    assert f"counted at {only_unit} (Lillskolan F-6), the only unit below it" in resolved[alone]
    row = night.exclusion(untyped, "UNKNOWN_SCHOOL")
    assert row["detail"].startswith(f"enrolment 1: organisation {s.skola} (Ekbacken, Skola) is above the school units")
    assert "no schoolType is given: set enroledAt to the school unit" in row["detail"]
    assert night.reasons(untyped) == {"UNKNOWN_SCHOOL"}
    _conserved(night)


def test_a_forvaltning_two_levels_up_resolves_too(canon, evaluate_rows):
    forvaltning = canon.org("Utbildningsförvaltningen", "Förvaltning", parent=canon.authority)
    skola = canon.org("Ekbacken", "Skola", parent=forvaltning)
    unit = canon.org("Ekbacken 7-9", "Skolenhet", parent=skola, school_types=["GR"])
    principal, _duty = canon.staff(forvaltning, role="Rektor")
    night = evaluate_rows(canon)
    assert night.users() == {principal: "staff"}
    assert night.query("SELECT school_id FROM nightly.school_affiliations") == [(unit,)]
    assert night.query("SELECT school_id, organisation_id FROM nightly.schools") == [(unit, canon.authority)]


def test_the_huvudman_itself_stays_unknown_school(canon, evaluate_rows):
    s = Skola(canon)
    teacher, _ = canon.staff(canon.authority, role="Rektor")
    student = canon.person()
    canon.enrol(student, canon.authority, start=None, end=None, school_type="GR")
    klass = canon.group(canon.authority, school_type="GR")
    night = evaluate_rows(canon)
    assert night.users() == {}
    for person in (teacher, student):
        detail = night.exclusion(person, "UNKNOWN_SCHOOL")["detail"]
        assert (
            f"organisation {canon.authority} (Testby kommun, Huvudman) is the school authority (Huvudman), not a school unit"
            in detail
        )
    assert "is the school authority" in night.exclusion(klass, "GROUP_UNKNOWN_SCHOOL")["detail"]
    assert _resolved(night) == {}
    assert s.gr  # the units below exist, and still are not chosen


def test_a_school_merged_from_two_sources_with_one_authority_has_no_authority_warning(tmp_path):
    from skolon_pipeline import night as stages
    from skolon_pipeline_tests.conftest import rules_night

    with_authority, without = Registry("a"), Registry("b")
    school = with_authority.school()
    without.organisations = [{**with_authority.organisations[1]}]  # the same unit, sent without its Huvudman
    without.organisations[0].pop("parentOrganisation")
    without.student(school)
    with_authority.student(school)
    data = tmp_path / "data"
    with_authority.write(data, source_id="a")
    without.write(data, source_id="b")
    write_sources(data, [{"id": s, "format": "ss12000", "path": f"registries/{s}"} for s in ("a", "b")])
    night_date = dt.date(2026, 12, 1)  # the rules merge the sources' schools: nothing needs publishing
    night = rules_night(stages.evaluate_night(load_installation(data), night_date, tmp_path / "staging"), night_date)
    assert night.query("SELECT school_id, organisation_id FROM nightly.schools") == [(school, with_authority.authority)]
    assert [w for w in night.warnings() if w[1] == "NO_SCHOOL_AUTHORITY"] == []


# ─── Nothing silently dropped ────────────────────────────────────────────────────────────────────────────


def test_non_string_ids_are_invalid_records_or_read_with_a_warning(reg, run_registry):
    school = reg.school()
    listed = reg.student(school)
    listed["id"] = ["a", "b"]
    boxed = reg.student(school)
    boxed["id"] = {"value": "x"}
    numbered = reg.student(school)
    numbered["id"] = 123456789
    klass = reg.group(school, members=[numbered])
    klass["id"] = ["k"]
    teacher, duty = reg.teach(school, reg.group(school))
    duty["id"] = True

    night = run_registry(reg)

    assert night.exclusion('["a","b"]', "INVALID_RECORD")["detail"] == "persons.id failed is_string (a list)"
    assert night.exclusion('{"value":"x"}', "INVALID_RECORD")["detail"] == "persons.id failed is_string (an object)"
    assert night.exclusion('["k"]', "INVALID_RECORD")["detail"] == "groups.id failed is_string (a list)"
    assert night.exclusion(teacher["id"], "INVALID_RECORD")["detail"] == "duties.id failed is_string (a boolean)"
    assert night.users().get("123456789") == "student"
    assert ("123456789", "ID_NOT_A_STRING", "id is a number; read as the text 123456789") in night.warnings()
    _conserved(night)


def test_list_fields_of_the_wrong_shape_are_reported_never_skipped(reg, run_registry):
    school = reg.school()
    klass = reg.group(school, members=[reg.student(school)])
    principal, duty = reg.staff(school, role="Rektor")
    duty["assignmentRole"] = "REKTOR"  # a string where an array belongs, as real registries send it
    mentor, mentor_duty = reg.staff(school)
    mentor_duty["assignmentRole"] = [{"group": {"id": klass["id"]}, "assignmentRoleType": "Mentor"}, "Mentor"]
    teacher, teacher_duty = reg.staff(school)
    activity = reg.activity(school, [klass], [teacher_duty])
    activity["teachers"] += [{"allocationPercent": 50}, "someone"]
    activity["groups"] += [{"displayName": "no id"}]
    lonely, lonely_duty = reg.staff(school)
    empty = reg.activity(school, [], [lonely_duty])
    klass["groupMemberships"].append(42)

    night = run_registry(reg)

    warnings = {(r, c, d) for r, c, d in night.warnings()}
    assert (duty["id"], "NOT_A_LIST", "Duty.assignmentRole is a string, not a list; ignored") in warnings
    assert (
        mentor_duty["id"],
        "ENTRY_IGNORED",
        "Duty.assignmentRole[2] is a string, not an object; ignored",
    ) in warnings
    assert (
        activity["id"],
        "TEACHER_IGNORED",
        "Activity.teachers[2] names neither a duty nor a person; ignored",
    ) in warnings
    assert (activity["id"], "ENTRY_IGNORED", "Activity.teachers[3] is a string, not an object; ignored") in warnings
    assert (activity["id"], "ENTRY_IGNORED", "Activity.groups[2] names no group; ignored") in warnings
    assert (
        empty["id"],
        "ACTIVITY_WITHOUT_GROUPS",
        "Activity has 1 teacher(s) but no groups; it assigns no one",
    ) in warnings
    assert (klass["id"], "ENTRY_IGNORED", "Group.groupMemberships[2] is a number, not an object; ignored") in warnings
    assert night.users()[principal["id"]] == "staff"
    assert night.users()[mentor["id"]] == "teacher" and night.users()[teacher["id"]] == "teacher"
    assert night.reasons(lonely["id"]) == {"NO_GROUP_ASSIGNMENT"}
    _conserved(night)
    assert set(night.conservation) == {"person", "group", "membership", "activity", "teacher_assignment"}


def test_conservation_sees_a_teacher_entry_that_vanished(reg, tmp_path):
    """The check itself: an activity teacher entry with no assignment and no warning is counted as missing."""
    import duckdb

    from skolon_pipeline.rules.conservation import conservation_gaps

    con = duckdb.connect()
    con.execute("CREATE TABLE c_activity_teachers AS SELECT 's' AS source_id, 'act' AS activity_id, 1 AS ordinal")
    con.execute("CREATE TABLE c_duty_assignment_roles AS SELECT 's' AS source_id, 'duty' AS duty_id, 1 AS ordinal")
    con.execute(
        "CREATE TABLE c_teacher_assignments (source_id VARCHAR, group_id VARCHAR, person_id VARCHAR, "
        "duty_id VARCHAR, origin VARCHAR, origin_id VARCHAR, origin_ordinal BIGINT)"
    )
    con.execute(
        "CREATE TABLE c_warnings (source_id VARCHAR, entity_type VARCHAR, record_id VARCHAR, code VARCHAR, "
        "detail VARCHAR)"
    )
    for table in (
        "c_persons",
        "c_duties",
        "c_enrolments",
        "c_responsibles",
        "c_groups",
        "c_group_memberships",
        "source_users",
        "out_exclusions",
        "out_groups",
        "out_memberships",
    ):
        con.execute(
            f"CREATE TABLE {table} (source_id VARCHAR, person_id VARCHAR, responsible_id VARCHAR, "
            "group_id VARCHAR, user_id VARCHAR, record_id VARCHAR, entity_type VARCHAR, duty_id VARCHAR)"
        )
    gaps = conservation_gaps(con)
    assert gaps["activity"] == {"missing": 1, "sample": ["s:act"]}
    assert gaps["teacher_assignment"]["sample"] == ["s:act/teachers[1]", "s:duty/assignmentRole[1]"]
    con.execute(
        "INSERT INTO c_warnings VALUES ('s', 'duty', 'duty', 'ASSIGNMENT_ROLE_IGNORED', "
        "'Duty.assignmentRole[1] names no group; ignored')"
    )
    assert conservation_gaps(con)["teacher_assignment"]["sample"] == ["s:act/teachers[1]"]


# ─── Page chains ─────────────────────────────────────────────────────────────────────────────────────────


def _paged(reg: Registry, tmp_path, pages: dict[str, object]):
    """The drop with persons as a folder of page files {name: (records slice, pageToken)}."""
    drop = reg.write(tmp_path / "data")
    (drop / "persons.json").unlink()
    (drop / "persons").mkdir()
    for name, (records, token) in pages.items():
        (drop / "persons" / name).write_text(json.dumps({"data": records, "pageToken": token}), encoding="utf-8")
    return drop


def _extract(tmp_path, drop):
    import duckdb

    from skolon_pipeline.sources.civic import PseudonymKey
    from skolon_pipeline.sources.ss12000 import extract_ss12000

    return extract_ss12000(
        duckdb.connect(), "testby", drop, key=PseudonymKey.from_secret("a registries test key, 0123456789")
    )


def _five_persons(reg):
    school = reg.school()
    return [reg.student(school) for _ in range(5)]


def test_a_complete_page_chain_is_read_in_page_order(reg, tmp_path):
    people = _five_persons(reg)
    drop = _paged(
        reg,
        tmp_path,
        {"page-1.json": (people[:2], "t2"), "page-2.json": (people[2:4], "t3"), "page-10.json": (people[4:], None)},
    )
    # page-10 sorts before page-2 by name; unpadded numbers are read in number order, and the chain has a gap
    with pytest.raises(
        SourceError, match=r"page chain of persons/ is broken: pages 3-9 of 10 missing after page-2.json"
    ):
        _extract(tmp_path, drop)
    (drop / "persons" / "page-10.json").rename(drop / "persons" / "page-3.json")
    assert _extract(tmp_path, drop)["persons"] == 5


def test_a_truncated_page_chain_fails_the_source_naming_entity_and_page(reg, tmp_path):
    people = _five_persons(reg)
    drop = _paged(reg, tmp_path, {"page-00001.json": (people[:2], "t2"), "page-00002.json": (people[2:4], "t3")})
    with pytest.raises(SourceError) as caught:
        _extract(tmp_path, drop)
    assert "truncated export: the last page of persons (persons/page-00002.json) still carries a pageToken" in str(
        caught.value
    )
    assert caught.value.source_id == "testby"


def test_a_missing_page_fails_the_source(reg, tmp_path):
    people = _five_persons(reg)
    pages = {
        f"page-{n:03d}.json": ([people[n % 5]] if n < 5 else [], None if n == 20 else f"t{n + 1}")
        for n in range(1, 21)
        if n != 7
    }
    drop = _paged(reg, tmp_path, pages)
    with pytest.raises(SourceError, match=r"page 7 of 20 missing after page-006.json"):
        _extract(tmp_path, drop)


def test_a_page_object_with_a_null_token_and_a_plain_array_are_complete(reg, tmp_path):
    people = _five_persons(reg)
    drop = reg.write(tmp_path / "data")
    assert _extract(tmp_path, drop)["persons"] == 5  # page objects with pageToken null
    (drop / "persons.json").write_text(json.dumps(people), encoding="utf-8")
    assert _extract(tmp_path, drop)["persons"] == 5
    (drop / "persons.json").write_text(json.dumps({"data": people, "pageToken": "more"}), encoding="utf-8")
    with pytest.raises(SourceError, match=r"last page of persons \(persons.json\) still carries a pageToken"):
        _extract(tmp_path, drop)


@pytest.mark.slow
def test_a_truncated_chain_is_carried_over_like_any_failed_source(tmp_path):
    import duckdb

    from skolon_pipeline import night as stages
    from skolon_pipeline.config import Settings

    good, paged = Registry("good"), Registry("paged")
    kept = paged.student(paged.school())
    good.student(good.school("Annanskolan", "87654321"))
    data = tmp_path / "data"
    sources = [{"id": s, "format": "ss12000", "path": f"registries/{s}"} for s in ("good", "paged")]
    settings = Settings(data, tmp_path / "wh.duckdb", tmp_path / "exports")

    def run(night: str):
        good.write(data, drop_date=night, source_id="good")
        drop = paged.write(data, drop_date=night, source_id="paged")
        write_sources(data, sources)
        return drop

    run("2026-11-30")
    stages.run_night(load_installation(data), dt.date(2026, 11, 30), settings.warehouse, settings.staging_dir)
    drop = run("2026-12-01")
    (drop / "persons.json").unlink()
    (drop / "persons").mkdir()
    (drop / "persons" / "page-1.json").write_text(
        json.dumps({"data": paged.persons, "pageToken": "next"}), encoding="utf-8"
    )
    evaluated = stages.run_night(
        load_installation(data), dt.date(2026, 12, 1), settings.warehouse, settings.staging_dir
    )
    assert [f.source_id for f in evaluated.failed] == ["paged"]
    assert "last page of persons (persons/page-1.json) still carries a pageToken" in evaluated.failed[0].message
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        carried = con.execute("SELECT user_id, stale_since FROM roster.users WHERE source_id = 'paged'").fetchall()
    assert carried == [(kept["id"], dt.date(2026, 11, 30))]
