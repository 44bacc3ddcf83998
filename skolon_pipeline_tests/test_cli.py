"""`skolon-pipeline run` end to end on the shipped demo registry, and its failures."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from skolon_pipeline import cli
from skolon_pipeline.demo import DEMO_NIGHT, NOT_IN_DEMO

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "data"

# CONTRACT §4, every code
REASON_CODES = {
    "MISSING_GIVEN_NAME", "MISSING_FAMILY_NAME", "MISSING_EMAIL", "INVALID_EMAIL", "DUPLICATE_EMAIL", "DUPLICATE_ID",
    "INVALID_RECORD", "PERSON_INACTIVE", "NO_SCHOOL_LINK", "EMPLOYMENT_NOT_STARTED", "EMPLOYMENT_ENDED",
    "NO_GROUP_ASSIGNMENT", "PLACEMENT_NOT_STARTED", "PLACEMENT_ENDED", "PLACEMENT_CANCELLED", "NO_ACTIVE_GROUP",
    "UNKNOWN_SCHOOL", "GROUP_UNKNOWN_SCHOOL", "GROUP_NOT_STARTED", "GROUP_ENDED", "GROUP_TYPE_NOT_SYNCED",
    "MEMBERSHIP_NOT_STARTED", "MEMBERSHIP_ENDED", "MEMBER_EXCLUDED", "GROUP_EXCLUDED", "UNKNOWN_PERSON",
    "UNKNOWN_GROUP",
}


def _run(tmp_path, data_dir=DEMO_DATA, night=DEMO_NIGHT, *extra):
    return cli.main(["run", "--as-of", str(night), "--data-dir", str(data_dir),
                     "--warehouse", str(tmp_path / "wh" / "warehouse.duckdb"),
                     "--export-dir", str(tmp_path / "exports"), *extra])


@pytest.fixture(scope="module")
def demo_night(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    assert _run(tmp) == 0
    return tmp / "wh" / "warehouse.duckdb"


def test_demo_night_shows_every_reason_code(demo_night):
    with duckdb.connect(str(demo_night), read_only=True) as con:
        codes = {r[0] for r in con.execute("SELECT DISTINCT reason_code FROM diagnostics.exclusions").fetchall()}
        assert codes == REASON_CODES - NOT_IN_DEMO.keys()
        assert con.execute("SELECT DISTINCT as_of FROM roster.users").fetchall() == [(DEMO_NIGHT,)]
        roles = dict(con.execute("SELECT role, count(*) FROM roster.users GROUP BY 1").fetchall())
        assert roles["student"] > 400 and roles["teacher"] > 20 and roles["staff"] >= 3
        # Some records are only visible through the look-ahead, and some will become visible on a known night.
        assert con.execute("SELECT count(*) FROM diagnostics.exclusions WHERE visible_from IS NOT NULL").fetchone()[0] > 0
    # the nightly run wrote the demo municipality's validation file too
    folder = demo_night.parents[1] / "exports" / DEMO_NIGHT.isoformat() / "lindby-kommun"
    assert sorted(p.name for p in folder.iterdir()) == [
        "excluded.csv", "groups.csv", "memberships.csv", "summary.csv", "users.csv",
        f"valideringsfil_lindby-kommun_{DEMO_NIGHT}.xlsx"]


def test_demo_night_conserves_every_record(demo_night):
    with duckdb.connect(str(demo_night), read_only=True) as con:
        users = con.execute("SELECT count(*) FROM roster.users").fetchone()[0]
        excluded = con.execute(
            "SELECT count(DISTINCT record_id) FROM diagnostics.exclusions WHERE entity_type = 'person'"
        ).fetchone()[0]
    # Every person in the drop who is not only a guardian is a user or excluded: count them straight from the files.
    drop = next((DEMO_DATA / "registries" / "lindby").iterdir())
    raw = duckdb.sql(
        f"""
        WITH p AS (SELECT unnest(from_json(ltrim(content, chr(65279))::JSON -> 'data', '["json"]')) AS rec
                   FROM read_text('{drop}/persons/*.json')),
             ids AS (SELECT DISTINCT lower(rec->>'id') AS id, rec FROM p),
             d AS (SELECT lower(unnest(from_json(ltrim(content, chr(65279))::JSON -> 'data', '["json"]'))->'person'->>'id') AS id
                   FROM read_text('{drop}/duties.json'))
        SELECT count(DISTINCT id) FROM ids
        WHERE json_array_length(coalesce(rec->'enrolments', '[]')) > 0 OR id IN (SELECT id FROM d)
           OR id NOT IN (SELECT lower(unnest(from_json(coalesce(rec->'responsibles', '[]'), '["json"]'))->'person'->>'id') FROM p)
        """
    ).fetchall()[0][0]
    assert users + excluded == raw


def test_run_prints_a_summary_without_personal_data(tmp_path, capsys):
    assert _run(tmp_path) == 0
    out = capsys.readouterr().out
    assert f"night {DEMO_NIGHT}: published" in out
    assert "source lindby:" in out and "included:" in out and "most common reasons:" in out
    assert "@" not in out  # no e-mail addresses, so no names either
    assert f"validation files: {tmp_path / 'exports' / DEMO_NIGHT.isoformat()}/" in out


def test_run_records_the_run_on_the_dagster_home_instance(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert _run(tmp_path) == 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].tags["dagster/partition"] == str(DEMO_NIGHT)


def test_broken_drop_exits_non_zero_naming_step_and_file(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(DEMO_DATA, data)
    assert _run(tmp_path, data) == 0
    capsys.readouterr()
    broken = next((data / "registries" / "lindby").iterdir()) / "duties.json"
    broken.write_text('{"data": [{"id": "x"', encoding="utf-8")
    assert _run(tmp_path, data) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    # the only source failed (its extract reports a failed `readable` check), so the rules step stops the run
    assert "step rules__eligibility" in err and "every source failed" in err
    assert "source 'lindby'" in err and "duties.json: not valid JSON" in err
    assert "the previous roster stays as it was" in err
    with duckdb.connect(str(tmp_path / "wh" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM roster.users").fetchone()[0] > 400


def test_configuration_error_names_the_key(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "sources.yaml").write_text("sources:\n  - id: a\n    format: ss12000\n    path: x\n    colour: red\n")
    assert _run(tmp_path, data) == cli.EXIT_USAGE
    assert "sources[0].colour: unknown key" in capsys.readouterr().err


def test_future_night_is_refused(tmp_path, capsys):
    assert _run(tmp_path, DEMO_DATA, dt.date.today() + dt.timedelta(days=3)) == cli.EXIT_USAGE
    assert "is in the future" in capsys.readouterr().err
