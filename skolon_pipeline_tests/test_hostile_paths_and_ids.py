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
from skolon_pipeline.sources.drops import SourceError
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


@pytest.mark.slow
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
        assert con.execute("SELECT group_id, name FROM roster.groups").fetchall() == [
            (evil_group["id"].lower(), HOSTILE)
        ]
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


def test_no_value_is_quoted_into_sql_text():
    """Values reach DuckDB as `?` parameters. SQL text is built only from the code's own names (tables,
    columns, aliases, fragments): this scans every f-string of the package for an interpolation placed inside
    SQL quotes ('{...}'), where a value would be, and allows only names from the code and dates' ISO form."""
    code_names = {
        "c",
        "column",  # column names from the code's own table definitions
        "entity.name",
        "entity.exclusion_type",  # history/guard entity constants
        "PROTECTED_DETAIL",  # explain's fixed replacement text
        "as_of",  # a datetime.date, in the review query the CLI prints for an admin
    }
    quoted = re.compile(r"'\{([^{}]+)\}'")
    seen = set()
    for path in SKOLON.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for literal in re.finditer(r'\bf("""|"|\'\'\')(.*?)\1', text, re.S):
            for expr in quoted.findall(literal.group(2)):
                seen.add(expr)
                assert expr in code_names or expr.endswith(".isoformat()"), (
                    f"{path.name}: f-string quotes {{{expr}}} into SQL text; pass it as a parameter"
                )
        assert not re.search(r"ATTACH\s+'", text), f"{path.name}: ATTACH of a literal path (use a parameter)"
        assert not re.search(r"\bTO\s+'\{", text), f"{path.name}: COPY TO a literal path (use a parameter)"
    assert seen, "the scan found no quoted interpolation at all: is it still looking at the right files?"


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
    assert (
        result.exclusion(newline["id"], "INVALID_RECORD")["detail"] == "persons.given_name failed no_control_characters"
    )
    assert result.exclusion(nul["id"], "INVALID_RECORD")["detail"] == "persons.person_id failed no_control_characters"
    assert result.exclusion(tab_group["id"], "INVALID_RECORD")["detail"] == "groups.name failed no_control_characters"
