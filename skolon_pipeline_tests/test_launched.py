"""A night launched as the schedule, the UI's Materialize or `dagster job launch` launch it (no run config) runs with
the executor configured on the nightly job: in the run's own process for one source, in forkserver workers with
the code preloaded for several, the way `skolon-pipeline run` runs it (bench/bench_launched.py times both)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from skolon_pipeline.config import Settings
from skolon_pipeline.definitions import build_defs
from skolon_pipeline.defs.schedules import NIGHTLY_JOB, NIGHTLY_SCHEDULE
from skolon_pipeline_tests.registry import Registry, write_sources

REPO = Path(__file__).resolve().parents[1]
NIGHT = "2026-11-20"


def _installation(data: Path, source_ids: list[str]) -> None:
    for source_id in source_ids:
        reg = Registry(source_id)
        school = reg.school(name=f"Skola {source_id}")
        klass = reg.group(school, members=[reg.student(school) for _ in range(3)])
        reg.teach(school, klass)
        reg.write(data, drop_date="2026-11-19", source_id=source_id)
    write_sources(data, [{"id": s, "format": "ss12000", "path": f"registries/{s}"} for s in source_ids])


@pytest.mark.parametrize(
    ("source_ids", "executor"), [(["alfa"], "in_process"), (["alfa", "beta"], "multiprocess_forkserver")]
)
def test_the_job_the_schedule_and_the_ui_run_bring_their_executor(tmp_path, source_ids, executor):
    _installation(tmp_path / "data", source_ids)
    defs = build_defs(Settings(tmp_path / "data", tmp_path / "w.duckdb", tmp_path / "ex"))
    assert defs.resolve_job_def(NIGHTLY_JOB).executor_def.name == executor
    assert defs.resolve_schedule_def(NIGHTLY_SCHEDULE).job.executor_def.name == executor
    # "Materialize" on a selection of assets in the UI runs Dagster's implicit asset job: the same executor.
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == executor
    # The job needs no execution config (the launchpad opens with none, and `{}` is valid).
    assert dg.validate_run_config(defs.resolve_job_def(NIGHTLY_JOB), {})


def test_the_cli_can_still_choose(tmp_path):
    _installation(tmp_path / "data", ["alfa"])
    settings = Settings(tmp_path / "data", tmp_path / "w.duckdb", tmp_path / "ex")
    assert (
        build_defs(settings, "multiprocess").resolve_job_def(NIGHTLY_JOB).executor_def.name == "multiprocess_forkserver"
    )


@pytest.mark.slow
@pytest.mark.parametrize("source_ids", [["alfa"], ["alfa", "beta"]], ids=["one source", "two sources"])
def test_dagster_job_execute_without_run_config_publishes_with_the_jobs_executor(tmp_path, source_ids):
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    _installation(data, source_ids)
    home.mkdir()
    shutil.copy(REPO / "skolon_pipeline" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SKOLON_")},
        "DAGSTER_HOME": str(home),
        "SKOLON_DATA_DIR": str(data),
        "SKOLON_WAREHOUSE": str(tmp_path / "wh" / "w.duckdb"),
        "SKOLON_EXPORT_DIR": str(tmp_path / "ex"),
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "job",
            "execute",
            "-m",
            "skolon_pipeline.definitions",
            "-a",
            "defs",
            "-j",
            NIGHTLY_JOB,
            "--tags",
            json.dumps({"dagster/partition": NIGHT}),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    with duckdb.connect(str(tmp_path / "wh" / "w.duckdb"), read_only=True) as con:
        per_source = dict(con.execute("SELECT source_id, count(*) FROM roster.users GROUP BY 1").fetchall())
    assert per_source == dict.fromkeys(source_ids, 4)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs()[0]
        events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
    assert run.tags["dagster/partition"] == NIGHT
    workers = {e.step_key for e in events if e.event_type_value == "STEP_WORKER_STARTING"}
    engine = " ".join(e.message or "" for e in events if e.event_type_value == "ENGINE_EVENT")
    if len(source_ids) == 1:
        assert workers == set() and "Executing steps in process" in engine
    else:
        assert {"extract__alfa", "extract__beta"} <= workers and "multiprocess executor" in engine
