"""Several sources: each is extracted and validated in its own step, and with the multiprocess executor the
two sources' steps run at the same time; one roster comes out."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from skolon_pipeline import cli
from skolon_pipeline.config import Settings
from skolon_pipeline.definitions import reconstructable_nightly_job
from skolon_pipeline_tests.registry import Registry, write_sources

REPO = Path(__file__).resolve().parents[1]


def _source(data_dir: Path, source_id: str) -> None:
    reg = Registry(source_id)
    school = reg.school(name=f"Skola {source_id}")
    klass = reg.group(school, members=[reg.student(school) for _ in range(3)])
    reg.teach(school, klass)
    reg.write(data_dir, drop_date="2026-11-19", source_id=source_id)


@pytest.mark.slow
def test_two_sources_run_in_parallel_processes_into_one_roster(tmp_path, monkeypatch):
    data = tmp_path / "data"
    _source(data, "alfa")
    _source(data, "beta")
    write_sources(data, [{"id": s, "format": "ss12000", "path": f"registries/{s}"} for s in ("alfa", "beta")])
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "skolon_pipeline" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    code = cli.main(
        [
            "run",
            "--as-of",
            "2026-11-20",
            "--data-dir",
            str(data),
            "--warehouse",
            str(tmp_path / "wh" / "w.duckdb"),
            "--export-dir",
            str(tmp_path / "ex"),
        ]
    )
    assert code == 0

    with duckdb.connect(str(tmp_path / "wh" / "w.duckdb"), read_only=True) as con:
        per_source = dict(con.execute("SELECT source_id, count(*) FROM roster.users GROUP BY 1").fetchall())
    assert per_source == {"alfa": 4, "beta": 4}
    # The change_set step's prepared warehouse was installed (or removed) by the publish step's process.
    assert not list((tmp_path / "wh").glob("w.duckdb.*.prepared*"))

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs()[0]
        events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
    launched = {e.step_key: i for i, e in enumerate(events) if e.event_type_value == "STEP_WORKER_STARTING"}
    finished = {e.step_key: i for i, e in enumerate(events) if e.event_type_value == "STEP_SUCCESS"}
    # Both sources' extract steps were started in their own worker processes before either had finished.
    assert max(launched["extract__alfa"], launched["extract__beta"]) < min(
        finished["extract__alfa"], finished["extract__beta"]
    )


def test_step_processes_are_built_from_the_runs_own_settings_whatever_the_environment(tmp_path, monkeypatch):
    """What a step process rebuilds (the job's reconstructable arguments) is each run's own sources.yaml and
    paths, never an earlier run's or the environment's: two runs in one process stay apart."""
    monkeypatch.setenv("SKOLON_DATA_DIR", str(tmp_path / "elsewhere"))
    for n, source in enumerate(("gamma", "delta")):
        data = tmp_path / f"data{n}"
        _source(data, source)
        settings = Settings(data, tmp_path / f"wh{n}" / "w.duckdb", tmp_path / "ex")
        pointer = reconstructable_nightly_job(settings).repository.pointer
        job = pointer.load_target()  # as the step process does
        extracts = {k.path[1] for k in job.asset_layer.executable_asset_keys if k.path[0] == "extract"}
        assert extracts == {source}
        # the executor choice travels too (`auto`: by the number of sources, as for a scheduled run)
        assert pointer.reconstructable_args == [str(data), str(settings.warehouse), str(settings.export_dir), "auto"]
