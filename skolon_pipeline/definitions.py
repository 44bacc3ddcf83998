"""The Dagster code location: one set of assets per configured source, the rules, the publish step, the
validation files, the nightly job and schedule. Built from `$SKOLON_DATA_DIR/sources.yaml`, so lineage shows each registry."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from skolon_pipeline.config import ConfigError, Settings, load_installation
from skolon_pipeline.defs.alerts import build_alert_sensor, build_stale_drop_sensor
from skolon_pipeline.defs.exports import build_export_assets
from skolon_pipeline.defs.partitions import nightly_partitions
from skolon_pipeline.defs.resources import SkolonResource
from skolon_pipeline.defs.roster import build_roster_assets
from skolon_pipeline.defs.schedules import build_nightly_job, build_nightly_schedule, nightly_executor, runs_in_parallel
from skolon_pipeline.defs.sources import build_source_assets


def executor_from_env() -> dg.ExecutorDefinition | None:
    """`SKOLON_EXECUTOR=k8s` runs every step in its own Kubernetes pod (dagster-k8s, deploy/k8s/); unset, the
    nightly job's own executor runs them on this machine (`defs.schedules.nightly_executor`)."""
    choice = os.environ.get("SKOLON_EXECUTOR", "").strip().lower()
    if choice in ("", "default"):
        return None
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ConfigError(f"SKOLON_EXECUTOR={choice!r}: expected k8s or nothing")


def build_defs(settings: Settings | None = None, executor: str = "auto") -> dg.Definitions:
    """`executor` (`auto`, `in_process`, `multiprocess`) chooses the job's executor; `auto` by the number of sources."""
    resource = SkolonResource.from_env() if settings is None else SkolonResource.from_settings(settings)
    settings = settings or Settings.from_env()
    installation = load_installation(settings.data_dir)
    partitions = nightly_partitions(installation.timezone, installation.first_night)
    assets = [
        a for source in installation.sources for a in build_source_assets(source, partitions, installation.timezone)
    ]
    assets += build_roster_assets(installation, partitions)
    assets += build_export_assets(partitions)
    executor_def = executor_from_env() or nightly_executor(runs_in_parallel(executor, len(installation.sources)))
    job = build_nightly_job(executor_def)
    return dg.Definitions(
        assets=assets,
        jobs=[job],
        executor=executor_def,  # also for the UI's "Materialize" of a selection (Dagster's implicit asset job)
        schedules=[build_nightly_schedule(job)],
        sensors=[build_alert_sensor(resource), build_stale_drop_sensor(resource)],
        resources={"skolon": resource},
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()


def nightly_job(
    data_dir: str | None = None, warehouse: str | None = None, export_dir: str | None = None, executor: str = "auto"
) -> dg.JobDefinition:
    """The nightly job: the target of `dg.build_reconstructable_job` for runs whose steps execute in their own
    processes. The settings travel as arguments, so every step process builds the same graph as the process that
    planned the run (and a second run in one process is not served a cached graph of the first)."""
    from skolon_pipeline.defs.schedules import NIGHTLY_JOB

    settings = None
    if data_dir is not None:
        settings = Settings(Path(data_dir), Path(warehouse), Path(export_dir))
    return build_defs(settings, executor).resolve_job_def(NIGHTLY_JOB)


def reconstructable_nightly_job(settings: Settings, executor: str = "auto"):
    return dg.build_reconstructable_job(
        "skolon_pipeline.definitions",
        "nightly_job",
        reconstructable_args=(str(settings.data_dir), str(settings.warehouse), str(settings.export_dir), executor),
    )
