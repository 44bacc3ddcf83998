"""Hostile paths and ids: a source can read nothing outside its folder, and ids are only ever data in SQL."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import duckdb
import pytest

from skolon_pipeline import night
from skolon_pipeline.config import ConfigError, load_installation
from skolon_pipeline.readers.drops import SourceError
from skolon_pipeline_tests.registry import Registry, write_sources

HOSTILE = "x'; drop table roster.users; --"
NIGHT = dt.date(2026, 12, 1)
SKOLON = Path(__file__).resolve().parents[1] / "skolon_pipeline"


def _registry() -> Registry:
    reg = Registry()
    school = reg.school()
    reg.group(school, members=[reg.student(school), reg.student(school)])
    return reg


def _run(data: Path, tmp_path: Path):
    return night.run_night(load_installation(data), NIGHT, tmp_path / "wh.duckdb", tmp_path / "staging")


def test_hostile_record_ids_are_data_not_sql(tmp_path):
    reg = Registry()
    school = reg.school()
    student = reg.student(school)
    student["id"] = HOSTILE
    evil_group = reg.group(school, members=[student], name=HOSTILE)
    evil_group["id"] = "g'); DELETE FROM nightly.users; --"
    data = tmp_path / "data"
    reg.write(data)
    _run(data, tmp_path)
    _run(data, tmp_path)  # publishing over a night that holds such ids
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT user_id FROM roster.users").fetchall() == [(HOSTILE,)]
        assert con.execute("SELECT group_id, name FROM roster.groups").fetchall() == [(evil_group["id"].lower(), HOSTILE)]
        assert con.execute("SELECT count(*) FROM roster.memberships").fetchone()[0] == 1


@pytest.mark.parametrize("source_id", [HOSTILE, "Lindby", "a b", "", "x" * 65, "../x", "a\nb"])
def test_hostile_source_id_is_refused_by_the_configuration(tmp_path, source_id):
    write_sources(tmp_path, [{"id": source_id, "format": "ss12000", "path": "registries/x"}])
    with pytest.raises(ConfigError) as err:
        load_installation(tmp_path)
    assert "sources[0].id" in str(err.value) and "lower-case letters a-z, digits and '-'" in str(err.value)


@pytest.mark.parametrize("path", ["../outside", "/etc", "registries/../../outside", "registries/x\x00y"])
def test_source_path_outside_the_data_dir_is_refused(tmp_path, path):
    write_sources(tmp_path, [{"id": "x", "format": "ss12000", "path": path}])
    with pytest.raises(ConfigError, match=r"sources\[0\]\.path"):
        load_installation(tmp_path)


def test_a_drop_folder_linking_out_of_the_source_is_refused(tmp_path):
    outside = _registry().write(tmp_path / "elsewhere")  # a complete drop, outside the data dir
    data = tmp_path / "data"
    (data / "registries" / "testby").mkdir(parents=True)
    write_sources(data, [{"id": "testby", "format": "ss12000", "path": "registries/testby"}])
    os.symlink(outside, data / "registries" / "testby" / "2026-12-01")
    with pytest.raises(SourceError, match="2026-12-01: is a link to a place outside"):
        _run(data, tmp_path)


def test_a_drop_file_linking_out_of_the_drop_is_refused(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('[{"id": "stolen"}]', encoding="utf-8")
    data = tmp_path / "data"
    drop = _registry().write(data)
    (drop / "persons.json").unlink()
    os.symlink(secret, drop / "persons.json")
    with pytest.raises(SourceError, match=r"persons\.json: is a link to a place outside"):
        _run(data, tmp_path)


def test_links_inside_the_drop_are_followed(tmp_path):
    data = tmp_path / "data"
    drop = _registry().write(data)
    (drop / "persons").mkdir()
    (drop / "persons.json").rename(drop / "persons" / "page-1.json")
    os.symlink(drop / "persons" / "page-1.json", drop / "persons.json")  # same file twice: exact repeats
    _run(data, tmp_path)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM roster.users").fetchone()[0] == 2


def test_sql_is_built_from_constants_only():
    """Every f-string that reaches DuckDB interpolates only names from the code (tables, columns, aliases),
    never a value: values are `?` parameters. This scans the package for f-string SQL and checks what goes in."""
    # Each is a name or SQL text from the code: a table/column/alias constant, or a query built from them (or
    # from a packaged .sql file). A new one is reviewed here before it is added.
    allowed = {
        "table", "column", "id_column", "entity", "alias", "a", "records", "view", "columns", "sql_type",
        "VIEWS[table]", "LATEST_NIGHT", "union", "sql", "t", "column.strip()", "', '.join(columns)",
        "bind_latest(sql_file('school_counts.sql'))", "warehouse.sql_file('school_counts.sql')", "lengths", "query",
        "name",  # warehouse.NIGHT_RELATIONS keys
        "as_of.isoformat()",  # a datetime.date's ISO form, in a view definition (which takes no parameters)
        "coalesced", "per_code",  # reason codes checked against [A-Z][A-Z0-9_]* as column names
        "_sheet_query(table)", "_sheet_query('sheet_summary')", "', '.join(COUNT_COLUMNS)",
        "name_match", "group_match",  # explain: a fixed fragment with one `?` per search word
        "columns_ddl",  # canonical.OPTIONAL_TABLES
        "spec.name", "select",  # OneRoster FileSpec names and its own column names (the header is a parameter)
        "cells", "sheet.query",  # xlsx: the sheet queries and their described columns as quoted identifiers
    }
    found = set()
    for path in SKOLON.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for call in re.finditer(r'\.execute\(\s*f"""(.*?)"""|\.execute\(\s*f"([^"]*)"', text, re.S):
            body = call.group(1) or call.group(2)
            for name in re.findall(r"\{([^{}]+)\}", body):
                found.add(name)
                # a module constant (UPPER_CASE, maybe subscripted by a name from the code) is SQL text of the code
                assert name in allowed or re.fullmatch(r"_?[A-Z][A-Z0-9_]*(\[[a-z_]+\])?", name), f"{path.name}: f-string SQL interpolates {{{name}}}"
        assert "ATTACH '" not in text, f"{path.name}: ATTACH a path as a literal (use a parameter)"
    assert {"table", "alias"} <= found


def test_control_characters_in_ids_and_names_exclude_the_record(run_registry):
    reg = Registry()
    school = reg.school()
    newline = reg.student(school, given="Anna\nDROP")
    nul = reg.student(school)
    nul["id"] = "abc\x00def"
    fine = reg.student(school, given="Åsa-Li", family="O'Brien")
    tab_group = reg.group(school, name="7A\tx", members=[fine])
    result = run_registry(reg)
    assert set(result.users()) == {fine["id"]}
    assert result.exclusion(newline["id"], "INVALID_RECORD")["detail"] == "persons.given_name failed no_control_characters"
    assert result.exclusion(nul["id"], "INVALID_RECORD")["detail"] == "persons.person_id failed no_control_characters"
    assert result.exclusion(tab_group["id"], "INVALID_RECORD")["detail"] == "groups.name failed no_control_characters"
