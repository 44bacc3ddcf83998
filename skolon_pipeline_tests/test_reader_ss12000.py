"""Reading SS12000 drops: every accepted file form, the newest drop on or before the night, clear errors for
files that cannot be read, and the real-world quirks that are tolerated."""

from __future__ import annotations

import datetime as dt
import json
import threading

import duckdb
import pytest

from skolon_pipeline.bounds import OVERSIZED
from skolon_pipeline.sources.civic import PseudonymKey
from skolon_pipeline.sources.drops import SourceError, find_drop
from skolon_pipeline.sources.ss12000 import extract_ss12000
from skolon_pipeline_tests.conftest import evaluate_registry_in
from skolon_pipeline_tests.registry import Registry


@pytest.fixture
def run_registry(evaluate_registry):
    """These tests read what the rules make of a drop: nothing they assert needs the night published."""
    return evaluate_registry


@pytest.fixture
def reg():
    r = Registry()
    school = r.school()
    klass = r.group(school, members=[r.student(school), r.student(school)])
    r.teach(school, klass)
    return r


def _extract(drop):
    con = duckdb.connect()
    counts = extract_ss12000(con, "testby", drop, key=PseudonymKey.from_secret("a reader test key, 0123456789abcdef"))
    return con, counts


def _write(drop, name, content: str | bytes):
    path = drop / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def test_page_objects(reg, tmp_path):
    drop = reg.write(tmp_path)
    _, counts = _extract(drop)
    assert counts["persons"] == 3
    assert counts["group_memberships"] == 2
    assert counts["teacher_assignments"] == 1


def test_plain_array_bom_and_folder_of_pages_read_the_same(reg, tmp_path):
    drop = reg.write(tmp_path)
    persons = reg.persons
    (drop / "persons.json").unlink()
    _write(drop, "persons/page-1.json", json.dumps({"data": persons[:2], "pageToken": "next"}))
    _write(drop, "persons/page-2.json", "\ufeff" + json.dumps(persons[2:]))  # BOM + plain array
    _write(drop, "groups.json", "\ufeff" + json.dumps(reg.groups))
    con, counts = _extract(drop)
    assert counts["persons"] == 3
    assert counts["group_memberships"] == 2
    files = {r[0] for r in con.execute("SELECT DISTINCT file FROM persons").fetchall()}
    assert files == {"persons/page-1.json", "persons/page-2.json"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("this is not json", "not valid JSON"),
        ("", "empty file, not JSON"),
        ('{"data": [{"id": "a"}', "not valid JSON"),  # truncated
        ('{"items": []}', "wrong shape"),
        ('"just a string"', "wrong shape"),
        ('[{"id": "a"}, {"givenName": "no id"}]', "record 2 (counting from 1) has no 'id' field"),
        ('[{"id": "a"}, 42]', "record 2 (counting from 1) is not an object"),
        (b'[{"id": "a", "givenName": "\xff\xfe"}]', "not valid UTF-8 text"),
    ],
)
def test_unreadable_file_fails_the_source_naming_file_and_problem(reg, tmp_path, content, problem):
    drop = reg.write(tmp_path)
    _write(drop, "persons.json", content)
    with pytest.raises(SourceError) as err:
        _extract(drop)
    assert err.value.source_id == "testby"
    assert err.value.file.endswith("persons.json")
    assert problem in err.value.problem
    assert "persons.json" in str(err.value) and "'testby'" in str(err.value)


def test_missing_entity_file_is_named(reg, tmp_path):
    drop = reg.write(tmp_path)
    (drop / "duties.json").unlink()
    with pytest.raises(SourceError, match=r"duties\.json: missing"):
        _extract(drop)


def test_newest_drop_on_or_before_the_night(tmp_path):
    for d in ("2026-11-01", "2026-11-15", "2026-12-01", "not-a-date", "2026-02-30"):
        (tmp_path / d).mkdir()
    assert find_drop("s", tmp_path, dt.date(2026, 11, 20))[0] == dt.date(2026, 11, 15)
    assert find_drop("s", tmp_path, dt.date(2026, 12, 1))[0] == dt.date(2026, 12, 1)
    with pytest.raises(SourceError, match="no registry drop dated on or before 2026-10-31"):
        find_drop("s", tmp_path, dt.date(2026, 10, 31))


@pytest.mark.slow
def test_mixed_case_ids_are_matched(tmp_path, run_registry):
    reg = Registry()
    school = reg.school()
    student = reg.student(school.upper())
    klass = reg.group(school, members=[{"person": {"id": student["id"].upper()}}])
    night = run_registry(reg)
    assert night.users() == {student["id"]: "student"}
    assert (klass["id"], student["id"], "student") in night.memberships()


def test_missing_optional_blocks_and_string_where_array_belongs(tmp_path, run_registry):
    reg = Registry()
    school = reg.school()
    student = reg.student(school)
    del student["enrolments"][0]["startDate"]  # seen in real exports: open start
    klass = reg.group(school)
    del klass["groupMemberships"]
    teacher, duty = reg.staff(school)
    duty["assignmentRole"] = "REKTOR"  # a string where an array of objects belongs: ignored
    reg.activity(school, [klass], [duty])
    for rec in reg.organisations:
        del rec["meta"]
    night = run_registry(reg)
    assert night.users() == {student["id"]: "student", teacher["id"]: "teacher"}


def test_ids_that_are_not_uuids_are_accepted(tmp_path, run_registry):
    reg = Registry()
    school = reg.school()
    student = reg.student(school)
    student["id"] = "123456789"
    night = run_registry(reg)
    assert night.users() == {"123456789": "student"}


# ─── What the reader hands the rules (the rules themselves: test_rules.py, from canonical rows) ──────────


@pytest.fixture(scope="module")
def quirks(tmp_path_factory):
    """One drop with the records of the reader cases below (each case's records are its own), read and
    evaluated once; returns the Night and the records by case."""
    reg = Registry()
    school = reg.school()
    cases = {
        "nameless": reg.student(school, given="", family="  "),
        "private": reg.student(school, emails=[{"value": "hemma@exempel.se", "type": "Privat"}]),
        "no_email": reg.student(school, emails=[]),
        "twice": reg.student(school),
        "conflicting": reg.student(school),
        "klass": reg.group(school, members=[reg.student(school)]),
        "shouting": reg.group(school, group_type="UNDERVISNING"),
        "unknown_duty_group": reg.group(school),
    }
    reg.persons.append({**cases["twice"]})  # exact repeat: dropped quietly
    reg.persons.append({**cases["conflicting"], "givenName": "Annan"})
    cases["mentor"], duty = reg.staff(school)
    duty["assignmentRole"] = [{"group": {"id": cases["klass"]["id"]}, "assignmentRoleType": "Mentor"}]
    activity = reg.activity(school, [cases["unknown_duty_group"]], [])
    activity["teachers"] = [{"duty": {"id": "00000000-0000-0000-0000-0000000d0001"}}]
    return evaluate_registry_in(tmp_path_factory.mktemp("quirks"), reg), cases


def test_blank_names_are_read_as_missing(quirks):
    night, cases = quirks
    nameless = cases["nameless"]["id"]
    assert night.reasons(nameless) == {"MISSING_GIVEN_NAME", "MISSING_FAMILY_NAME"}
    assert nameless not in night.users()


def test_a_private_address_is_counted_not_kept(quirks):
    night, cases = quirks
    assert "private" in night.exclusion(cases["private"]["id"], "MISSING_EMAIL")["detail"]
    assert night.exclusion(cases["no_email"]["id"], "MISSING_EMAIL")["detail"] == "no e-mail address"


def test_an_exact_repeat_is_quiet_a_conflicting_one_is_duplicate_id(quirks):
    night, cases = quirks
    twice = cases["twice"]["id"]
    assert night.users()[twice] == "student"
    assert night.reasons(twice) == set()
    assert night.reasons(cases["conflicting"]["id"]) == {"DUPLICATE_ID"}
    assert all(g["missing"] == 0 for g in night.conservation.values())


def test_mentor_assignment_role_makes_a_teacher(quirks):
    night, cases = quirks
    mentor = cases["mentor"]["id"]
    assert night.users()[mentor] == "teacher"
    assert (cases["klass"]["id"], mentor, "teacher") in night.memberships()


def test_group_type_in_another_letter_case_is_repaired_with_a_warning(quirks):
    night, cases = quirks
    shouting = cases["shouting"]["id"]
    assert shouting in night.groups()
    assert (shouting, "ENUM_CASE", "group_type UNDERVISNING read as Undervisning") in night.warnings()


def test_unknown_duty_in_activity_is_unknown_person(quirks):
    night, cases = quirks
    row = night.exclusion(f"{cases['unknown_duty_group']['id']}/00000000-0000-0000-0000-0000000d0001", "UNKNOWN_PERSON")
    assert row["detail"].startswith("duty ")
    assert all(g["missing"] == 0 for g in night.conservation.values())


def test_email_choice_prefers_school_types_then_work_then_school_domain(run_registry):
    reg = Registry()
    school = reg.school()
    school_typed = reg.student(
        school,
        emails=[
            {"value": "privat@exempel.se", "type": "Privat"},
            {"value": "arbete@foretag.se", "type": "Arbete övrigt"},
            {"value": "Elev.Ett@Skola.Test", "type": "Skola elev"},
        ],
    )
    work_typed = reg.student(
        school,
        emails=[
            {"value": "x@elev.testby.se", "type": "Privat"},
            {"value": "arbete2@foretag.se", "type": "Arbete övrigt"},
        ],
    )
    by_domain = reg.student(
        school,
        emails=[
            {"value": "hemma@exempel.se", "type": "Privat"},
            {"value": "elev.tva@elev.testby.se", "type": "Privat"},
        ],
    )
    night = run_registry(reg, rules={"school_email_domains": ["elev.testby.se"]})
    emails = dict(night.query("SELECT user_id, email FROM nightly.users"))
    assert emails == {
        school_typed["id"]: "elev.ett@skola.test",
        work_typed["id"]: "arbete2@foretag.se",
        by_domain["id"]: "elev.tva@elev.testby.se",
    }


def test_activity_teacher_given_as_person_is_accepted_with_warning(run_registry):
    reg = Registry()
    school = reg.school()
    klass = reg.group(school)
    teacher, _duty = reg.staff(school)
    activity = reg.activity(school, [klass], [])
    activity["teachers"] = [{"person": {"id": teacher["id"]}, "allocationPercent": 50}]
    night = run_registry(reg)
    assert night.users()[teacher["id"]] == "teacher"
    assert [c for _, c, _ in night.warnings()] == ["TEACHER_BY_PERSON"]


# ─── Streamed reading: a file's records reach DuckDB without the file being parsed whole ─────────────────


def _persons_text(records: list[dict], form: str) -> str:
    """`records` as persons.json in one of the forms registries send (CONTRACT §2)."""
    data = json.dumps(records)
    return {
        "array": data,
        "page": f'{{"data": {data}, "pageToken": null}}',
        "token-first": f'{{"pageToken": null, "data": {data}}}',
        "no-token": f'{{"data": {data}}}',
        "bom": "\ufeff" + f'{{"data": {data}, "pageToken": null}}',
        "bom-array": "\ufeff\n " + data + "\n",
        "indented": json.dumps({"data": records, "pageToken": None}, indent=2).replace("\n", "\r\n"),
        "one-a-line": '{"data": [' + ",\n".join(json.dumps(r) for r in records) + '], "pageToken": null}\n',
    }[form]


@pytest.fixture
def never_whole(monkeypatch):
    """Fails the test if a file is read whole (read_text) instead of streamed."""
    from skolon_pipeline.sources import ss12000

    def whole(*args):
        raise AssertionError("the file was parsed whole")

    monkeypatch.setattr(ss12000, "_load_whole", whole)
    monkeypatch.setattr(ss12000, "_check_chain_end", whole)


@pytest.mark.parametrize(
    "form", ["array", "page", "token-first", "no-token", "bom", "bom-array", "indented", "one-a-line"]
)
def test_every_file_form_is_streamed_and_reads_the_same(reg, tmp_path, form, never_whole):
    drop = reg.write(tmp_path)
    _write(drop, "persons.json", _persons_text(reg.persons, form))
    con, counts = _extract(drop)
    assert counts["persons"] == 3
    assert counts["group_memberships"] == 2


def _load(tmp_path, text: str):
    """persons.json with `text`, loaded into raw_persons by the reader alone: (id, idx) in idx order."""
    from skolon_pipeline.sources.ss12000 import _load_file, _span_files

    path = tmp_path / "persons.json"
    path.write_text(text, encoding="utf-8")
    con = duckdb.connect(str(tmp_path / "staging.duckdb"))  # spills (if at all) beside it, in tmp_path
    con.execute("CREATE TEMP TABLE raw_persons (file VARCHAR, idx BIGINT, id VARCHAR, rec JSON)")
    with _span_files(con) as spans:
        _load_file(con, "testby", "persons", path, "raw_persons", spans)
    return con


def test_records_keep_their_place_in_a_large_file(tmp_path, never_whole):
    # ~3 MB, several of DuckDB's JSON buffers' worth of records: idx is each record's place in the file.
    records = [{"id": f"p{i:05d}", "pad": "x" * (i % 97)} for i in range(40_000)]
    con = _load(tmp_path, _persons_text(records, "one-a-line"))
    rows = con.execute("SELECT id, idx FROM raw_persons ORDER BY idx").fetchall()
    assert rows == [(f"p{i:05d}", i + 1) for i in range(40_000)]


def test_a_record_reads_the_same_whatever_the_layout_of_its_file(tmp_path, never_whole):
    # Repeats are compared by their text (first_copies): an indented copy must equal a compact one.
    records = [{"id": f"p{i}", "emails": [{"value": f"a{i}@x.se", "type": "Privat"}], "n": i} for i in range(50)]
    texts = {}
    for form in ("array", "indented", "bom"):
        con = _load(tmp_path, _persons_text(records, form))
        texts[form] = con.execute("SELECT rec::VARCHAR FROM raw_persons ORDER BY idx").fetchall()
        con.close()
        (tmp_path / "staging.duckdb").unlink()
    assert texts["array"] == texts["indented"] == texts["bom"]
    assert texts["array"][0] == (json.dumps(records[0], separators=(",", ":")),)


def test_a_record_above_the_stream_s_maximum_object_size_is_read_whole_and_shrunk(tmp_path, monkeypatch):
    from skolon_pipeline.sources import ss12000

    monkeypatch.setattr(ss12000, "_max_object_size", lambda con: 16 << 20)  # DuckDB's least
    whole_reads = []
    load_whole = ss12000._load_whole
    monkeypatch.setattr(ss12000, "_load_whole", lambda *args: whole_reads.append(args[3].name) or load_whole(*args))
    records = [{"id": "a"}, {"id": "b", "givenName": "x" * 40_000_000}, {"id": "c"}]  # above its two buffers
    con = _load(tmp_path, _persons_text(records, "page"))
    rows = con.execute("SELECT id, idx, length(rec::VARCHAR) < 1000 FROM raw_persons ORDER BY idx").fetchall()
    assert rows == [("a", 1, True), ("b", 2, True), ("c", 3, True)]  # the 40 MB name: OVERSIZED and its head
    assert OVERSIZED in con.execute("SELECT rec->>'givenName' FROM raw_persons WHERE id = 'b'").fetchone()[0]
    assert whole_reads == ["persons.json"]


def test_a_bad_record_deep_in_a_streamed_file_is_named_by_its_place(reg, tmp_path):
    drop = reg.write(tmp_path)
    records = [{"id": f"p{i:05d}"} for i in range(30_000)]
    records[25_432] = {"givenName": "no id"}
    _write(drop, "persons.json", _persons_text(records, "page"))
    with pytest.raises(SourceError, match=r"record 25433 \(counting from 1\) has no 'id' field"):
        _extract(drop)


@pytest.mark.parametrize(
    "text",
    [
        '{"data": RECORDS, "pageToken": "next-page"}',
        '{"pageToken": "next-page", "data": RECORDS}',
        '\ufeff{\n  "data": RECORDS,\n  "pageToken" : "a \\"quoted\\" ] } token"\n}\n',
    ],
)
def test_a_pagetoken_on_the_last_page_is_read_from_the_tail(reg, tmp_path, text, never_whole):
    drop = reg.write(tmp_path)
    _write(drop, "persons.json", text.replace("RECORDS", json.dumps(reg.persons)))
    with pytest.raises(SourceError, match=r"truncated export: the last page of persons \(persons\.json\)"):
        _extract(drop)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The span from `data`'s "[" to the last "]" is no array: read whole, as before (`other` is ignored).
        ('{"data": RECORDS, "other": [2], "pageToken": null}', 3),
        ('{"data": RECORDS, "pageToken": null, "total": 3}', 3),
        ('{"data": RECORDS, "pageToken": null} trailing', "not valid JSON"),
        ('{"data": RECORDS, "pageToken": null}}', "not valid JSON"),
        ('{"data": RECORDS]], "pageToken": null}', "not valid JSON"),
        ('{"data": [], "pageToken": null, "data": RECORDS}', None),  # DuckDB's choice of the two, as before
        ('{"pageToken": null, "data": RECORDS, "pageToken": "x"}', None),
        ("RECORDS]", "not valid JSON"),
        ("[RECORDS]", "record 1 (counting from 1) is not an object"),
    ],
)
def test_a_malformed_tail_is_never_read_wrong(reg, tmp_path, monkeypatch, text, expected):
    """What the stream cannot take for the page's records is read whole and judged as before the stream."""
    from skolon_pipeline.sources import ss12000

    drop = reg.write(tmp_path)
    _write(drop, "persons.json", text.replace("RECORDS", json.dumps(reg.persons)))

    def outcome():
        try:
            return _extract(drop)[1]["persons"]
        except SourceError as err:
            return err.problem

    streamed = outcome()
    monkeypatch.setattr(ss12000, "_array_span", lambda path: None)  # the whole-file read alone
    assert streamed == outcome()
    if expected is not None:
        assert streamed == expected if isinstance(expected, int) else expected in streamed


def test_a_page_object_beyond_a_tiny_memory_limit_is_read_whole(tmp_path):
    # ~33 MB under a 96 MB limit: parsing it whole needs several times the file (it fails); streamed, it fits.
    from skolon_pipeline.sources.ss12000 import _load_file, _load_whole, _span_files

    line = '{"id": "p%06d", "givenName": "' + "x" * 250 + '", "emails": [{"value": "a%d@x.se", "type": "Privat"}]}'
    text = '{"data": [' + ",\n".join(line % (i, i) for i in range(110_000)) + '], "pageToken": null}'
    path = tmp_path / "persons.json"
    path.write_text(text, encoding="utf-8")
    del text
    con = duckdb.connect(str(tmp_path / "staging.duckdb"))  # spills beside it, in tmp_path
    con.execute("SET memory_limit = '96MB'")
    con.execute("CREATE TEMP TABLE raw_persons (file VARCHAR, idx BIGINT, id VARCHAR, rec JSON)")
    assert _load_whole(con, "raw_persons", "persons.json", path) is None  # out of memory
    with _span_files(con) as spans:
        assert (
            _load_file(con, "testby", "persons", path, "raw_persons", spans) is None
        )  # streamed; no pageToken at the tail
    assert con.execute("SELECT count(*), max(idx), max(id) FROM raw_persons").fetchone() == (
        110_000,
        110_000,
        "p109999",
    )


def test_of_several_broken_files_the_first_in_reading_order_is_named(reg, tmp_path):
    # Files are read two at a time (_load_raw): the error is still the one a file-by-file read meets first
    # (entity order, then chain order, an entity's chain end after its last file), whichever fails first.
    drop = reg.write(tmp_path)
    persons = reg.persons
    (drop / "persons.json").unlink()
    for n in range(1, 9):
        _write(drop, f"persons/page-{n}.json", json.dumps({"data": persons, "pageToken": "next"}))
    _write(drop, "persons/page-9.json", json.dumps({"data": persons, "pageToken": "more"}))  # truncated chain
    _write(drop, "groups.json", "not json")
    for _ in range(3):
        with pytest.raises(SourceError, match=r"last page of persons \(persons/page-9\.json\)"):
            _extract(drop)
    _write(drop, "persons/page-5.json", '[{"id": "a"}, 7]')
    for _ in range(3):
        with pytest.raises(SourceError, match=r"page-5\.json.*record 2 \(counting from 1\) is not an object"):
            _extract(drop)
    con = duckdb.connect()  # nothing of a failed read is left on its connection
    with pytest.raises(SourceError):
        extract_ss12000(con, "testby", drop, key=PseudonymKey.from_secret("a reader test key, 0123456789abcdef"))
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'raw_%'").fetchone() == (0,)


@pytest.mark.parametrize("failing", ["ss12000.sql", "ss12000_groups.sql"])
def test_a_failing_half_of_the_flattening_fails_the_extract_and_leaves_nothing_running(
    reg, tmp_path, monkeypatch, failing
):
    # Groups are flattened on a second connection while the other entities are (_flatten): a failure on either
    # side is the extract's error, the other side stops, and the records as sent are gone from memory.
    from skolon_pipeline.sources import ss12000

    drop = reg.write(tmp_path)
    script = ss12000._script

    def broken(name: str) -> str:
        return "SELECT error('flattening broke here');" if name == failing else script(name)

    monkeypatch.setattr(ss12000, "_script", broken)
    con = duckdb.connect()
    with pytest.raises(duckdb.Error, match="flattening broke here"):
        extract_ss12000(con, "testby", drop, key=PseudonymKey.from_secret("a reader test key, 0123456789abcdef"))
    assert not [t for t in threading.enumerate() if t.name == "ss12000-groups"]
    assert con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = 'skolon_raw'").fetchone() == (0,)
