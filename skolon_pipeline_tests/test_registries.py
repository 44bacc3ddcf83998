"""Issue 12: SS12000 exports shaped as real registries send them (CONTRACT §1-4).

Rules are evaluated from small hand-built drops without Dagster (`run_registry`); only what only a Dagster run
shows (a night of an old year through the partitions) goes through `skolon-pipeline run`.
"""

from __future__ import annotations

import datetime as dt

import pytest

from skolon_pipeline import cli
from skolon_pipeline.config import load_installation
from skolon_pipeline.defs.partitions import nightly_partitions
from skolon_pipeline_tests.registry import Registry, write_sources


def _conserved(night) -> None:
    assert all(g["missing"] == 0 for g in night.conservation.values()), night.conservation


@pytest.fixture
def reg():
    return Registry()


# ─── Dates as registries write them ──────────────────────────────────────────────────────────────────────


def test_far_end_dates_are_dates_not_invalid_records(reg, run_registry):
    school = reg.school()
    student = reg.student(school, end="9999-12-31")
    klass = reg.group(school, end="9999-12-31", members=[{"person": {"id": student["id"]}, "endDate": "9999-12-31"}])
    teacher, duty = reg.teach(school, klass, end="9999-12-31")
    reg.activities[-1]["endDate"] = "9999-12-31"

    night = run_registry(reg)

    assert night.users() == {student["id"]: "student", teacher["id"]: "teacher"}
    assert night.query("SELECT count(*) FROM nightly.exclusions")[0][0] == 0
    far = dt.date(9999, 12, 31)
    assert night.query("SELECT end_date FROM nightly.groups") == [(far,)]
    assert set(night.query("SELECT user_id, end_date FROM nightly.memberships")) == {(student["id"], far), (teacher["id"], far)}
    assert set(night.query("SELECT user_id, end_date FROM nightly.school_affiliations")) == {
        (student["id"], far), (teacher["id"], far)}
    _conserved(night)


@pytest.mark.parametrize("bad", ["2026-02-29", "2026-13-01", "0000-01-01", "20260101", "9999-12-32"])
def test_impossible_dates_stay_invalid(reg, run_registry, bad):
    school = reg.school()
    student = reg.student(school, end=bad)
    night = run_registry(reg)
    assert night.reasons(student["id"]) == {"INVALID_RECORD"}
    assert "enrolments[1].end_date failed iso_date" in night.exclusion(student["id"], "INVALID_RECORD")["detail"]


def test_an_end_before_a_far_start_is_still_caught(reg, run_registry):
    school = reg.school()
    student = reg.student(school, start="9999-01-01", end="2300-01-01")
    night = run_registry(reg)
    assert "end_not_before_start" in night.exclusion(student["id"], "INVALID_RECORD")["detail"]


def test_far_end_dates_in_oneroster_are_dates(tmp_path):
    from skolon_pipeline import night as stages
    from skolon_pipeline.config import Settings
    from skolon_pipeline_tests.conftest import Night
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
    settings = Settings(data_dir, tmp_path / "wh.duckdb", tmp_path / "exports")
    evaluated = stages.run_night(load_installation(data_dir), dt.date(2026, 12, 1), settings.warehouse,
                                 settings.staging_dir)
    night = Night(settings.warehouse, dt.date(2026, 12, 1), evaluated.conservation)
    _conserved(night)
    assert night.query("SELECT count(*) FROM nightly.exclusions")[0][0] == 0
    assert set(night.users()) == {f"or:{ids[k]}" for k in ("teacher", "student", "student2")}
    last = dt.date(9999, 12, 30)
    assert night.query("SELECT end_date FROM nightly.groups") == [(last,)]
    assert night.query("SELECT end_date FROM nightly.memberships WHERE user_id = ?", [f"or:{ids['student']}"]) == [
        (last,)]


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
    [("2014-12-31", "night 2014-12-31 is before first_night (2015-01-01, sources.yaml)"),
     ("2999-01-01", "night 2999-01-01 is in the future")],
)
def test_nights_outside_the_partitions_are_refused_in_one_line(tmp_path, capsys, monkeypatch, night, message):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    Registry().write(tmp_path / "data", drop_date="2014-01-01")
    code = cli.main(["run", "--as-of", night, "--data-dir", str(tmp_path / "data"),
                     "--warehouse", str(tmp_path / "wh.duckdb"), "--export-dir", str(tmp_path / "exports")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert message in err and len(err.strip().splitlines()) == 1
    assert "CheckError" not in err and "Traceback" not in err
    assert not (tmp_path / "wh.duckdb").exists()


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
    code = cli.main(["run", "--as-of", "2019-09-03", "--data-dir", str(tmp_path / "data"),
                     "--warehouse", str(warehouse), "--export-dir", str(tmp_path / "exports")])
    assert code == 0, capsys.readouterr().err
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        users = dict(con.execute("SELECT user_id, role FROM roster.users").fetchall())
        as_of = con.execute("SELECT DISTINCT as_of FROM roster.users").fetchall()
    assert users == {student["id"]: "student", teacher["id"]: "teacher"}
    assert as_of == [(dt.date(2019, 9, 3),)]
