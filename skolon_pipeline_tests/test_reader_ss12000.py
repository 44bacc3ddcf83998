"""Reading SS12000 drops: every accepted file form, the newest drop on or before the night, clear errors for
files that cannot be read, and the real-world quirks that are tolerated."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from skolon_pipeline.sources.civic import PseudonymKey
from skolon_pipeline.sources.drops import SourceError, find_drop
from skolon_pipeline.sources.ss12000 import extract_ss12000
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
