"""`skolon-pipeline run` end to end on the shipped demo registry, and its failures."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import io
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from skolon_pipeline import cli
from skolon_pipeline.defs.roster import CONSERVATION_CHECK, ELIGIBILITY_KEY
from skolon_pipeline.defs.schedules import NIGHTLY_JOB
from skolon_pipeline.demo import DEMO_NIGHT, NOT_IN_DEMO
from skolon_pipeline_tests.contract import REASON_CODES

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "data"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    # Runs on the shipped demo data get an instance of their own (else they would share the repository's
    # data/dagster_home), and no SKOLON_* variable of the shell reaches them.
    for name in ("SKOLON_DATA_DIR", "SKOLON_WAREHOUSE", "SKOLON_EXPORT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "test_dagster_home"))


def _run(tmp_path, data_dir=DEMO_DATA, night=DEMO_NIGHT, *extra):
    return cli.main(
        [
            "run",
            "--as-of",
            str(night),
            "--data-dir",
            str(data_dir),
            "--warehouse",
            str(tmp_path / "wh" / "warehouse.duckdb"),
            "--export-dir",
            str(tmp_path / "exports"),
            *extra,
        ]
    )


@dataclass
class DemoRun:
    """The demo night, run once for the module through `cli.main` on an instance with the shipped dagster.yaml."""

    warehouse: Path
    dagster_home: Path
    out: str  # what the run printed on stdout


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "skolon_pipeline" / "dagster.yaml", home / "dagster.yaml")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        for name in ("SKOLON_DATA_DIR", "SKOLON_WAREHOUSE", "SKOLON_EXPORT_DIR"):
            mp.delenv(name, raising=False)
        mp.setenv("DAGSTER_HOME", str(home))
        assert _run(tmp) == 0
    return DemoRun(tmp / "wh" / "warehouse.duckdb", home, out.getvalue())


@pytest.fixture
def demo_night(demo_run):
    return demo_run.warehouse


@pytest.mark.slow
def test_demo_night_shows_every_reason_code(demo_night):
    with duckdb.connect(str(demo_night), read_only=True) as con:
        codes = {r[0] for r in con.execute("SELECT DISTINCT reason_code FROM diagnostics.exclusions").fetchall()}
        assert codes == REASON_CODES - NOT_IN_DEMO.keys()
        assert con.execute("SELECT DISTINCT as_of FROM roster.users").fetchall() == [(DEMO_NIGHT,)]
        roles = dict(con.execute("SELECT role, count(*) FROM roster.users GROUP BY 1").fetchall())
        assert roles["student"] > 400 and roles["teacher"] > 20 and roles["staff"] >= 3
        # Some records are only visible through the look-ahead, and some will become visible on a known night.
        assert (
            con.execute("SELECT count(*) FROM diagnostics.exclusions WHERE visible_from IS NOT NULL").fetchone()[0] > 0
        )
    # the nightly run wrote the demo municipality's validation file too
    folder = demo_night.parents[1] / "exports" / DEMO_NIGHT.isoformat() / "lindby-kommun"
    assert sorted(p.name for p in folder.iterdir()) == [
        "excluded.csv",
        "groups.csv",
        "memberships.csv",
        "summary.csv",
        "users.csv",
        f"valideringsfil_lindby-kommun_{DEMO_NIGHT}.xlsx",
    ]


@pytest.mark.slow
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


@pytest.mark.slow
def test_run_prints_a_summary_without_personal_data(demo_run):
    out = demo_run.out
    assert f"night {DEMO_NIGHT}: published" in out
    assert "source lindby:" in out and "included:" in out and "most common reasons:" in out
    assert "@" not in out  # no e-mail addresses, so no names either
    assert f"validation files: {demo_run.warehouse.parents[1] / 'exports' / DEMO_NIGHT.isoformat()}/" in out


@pytest.mark.slow
def test_run_records_the_run_on_the_dagster_home_instance(demo_run):
    with dg.DagsterInstance.from_config(str(demo_run.dagster_home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].tags["dagster/partition"] == str(DEMO_NIGHT)


@pytest.mark.slow
def test_without_dagster_home_the_run_is_on_the_data_folders_instance_with_its_checks_and_metadata(
    tmp_path, monkeypatch
):
    # A fresh clone: no DAGSTER_HOME. The run lands on <data dir>/dagster_home, the instance `dagster dev` opens
    # with the README's UI command, so the night is in the UI's run list, materialized for its partition.
    monkeypatch.delenv("DAGSTER_HOME")
    data = tmp_path / "data"
    shutil.copytree(
        DEMO_DATA, data, ignore=shutil.ignore_patterns("dagster_home", "warehouse.duckdb*", "staging", "exports")
    )
    assert _run(tmp_path, data) == 0
    home = data / "dagster_home"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert yaml.safe_load((home / "dagster.yaml").read_text())["concurrency"]["pools"]["default_limit"] == 1
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        assert run.tags["dagster/partition"] == str(DEMO_NIGHT) and run.job_name == NIGHTLY_JOB
        users = dg.AssetKey(["roster", "users"])
        assert instance.get_materialized_partitions(users) == {str(DEMO_NIGHT)}
        event = instance.get_latest_materialization_event(users)
        assert event.run_id == run.run_id and event.asset_materialization.metadata
        checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(ELIGIBILITY_KEY, CONSERVATION_CHECK)]
        )
        [check] = checks.values()
        assert check.run_id == run.run_id and check.status.value == "SUCCEEDED"
    # A second night on the same folder is the second run of the same instance.
    assert _run(tmp_path, data, DEMO_NIGHT + dt.timedelta(days=1)) == 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 2


@pytest.mark.slow
def test_broken_drop_exits_non_zero_naming_step_and_file(tmp_path, capsys, demo_run):
    data = tmp_path / "data"
    shutil.copytree(DEMO_DATA, data, ignore=shutil.ignore_patterns("dagster_home", "warehouse.duckdb*", "staging"))
    shutil.copytree(demo_run.warehouse.parent, tmp_path / "wh")  # the demo night, published from the same drop
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


@pytest.mark.parametrize("code", [0, 1, 5])
def test_the_console_script_exits_with_the_command_s_code(monkeypatch, code):
    # entry() freezes the garbage collector's objects before the interpreter shuts down; the exit code is main's.
    monkeypatch.setattr(cli, "main", lambda argv=None: code)
    try:
        with pytest.raises(SystemExit) as exited:
            cli.entry()
    finally:
        gc.unfreeze()  # this process goes on running tests
    assert exited.value.code == code
