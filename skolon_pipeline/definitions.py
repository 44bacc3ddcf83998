"""The Dagster code location: one set of assets per configured source, the rules, the publish step, the
validation files, the nightly job and schedule. Built from `$SKOLON_DATA_DIR/sources.yaml`, so lineage shows each registry."""

from __future__ import annotations

import os

import dagster as dg

from skolon_pipeline.config import ConfigError, Settings, load_installation
from skolon_pipeline.defs.exports import build_export_assets
from skolon_pipeline.defs.partitions import nightly_partitions
from skolon_pipeline.defs.resources import SkolonResource
from skolon_pipeline.defs.roster import build_roster_assets
from skolon_pipeline.defs.schedules import build_nightly_job, build_nightly_schedule
from skolon_pipeline.defs.sources import build_source_assets


def executor_from_env() -> dg.ExecutorDefinition | None:
    """`SKOLON_EXECUTOR=k8s` runs every step in its own Kubernetes pod (dagster-k8s, deploy/k8s/); unset, the
    default executor runs steps in processes on this machine (or in-process, as the CLI chooses)."""
    choice = os.environ.get("SKOLON_EXECUTOR", "").strip().lower()
    if choice in ("", "default"):
        return None
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ConfigError(f"SKOLON_EXECUTOR={choice!r}: expected k8s or nothing")


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    resource = SkolonResource.from_env() if settings is None else SkolonResource.from_settings(settings)
    settings = settings or Settings.from_env()
    installation = load_installation(settings.data_dir)
    partitions = nightly_partitions(installation.timezone)
    assets = [a for source in installation.sources for a in build_source_assets(source, partitions)]
    assets += build_roster_assets(installation, partitions)
    assets += build_export_assets(partitions)
    job = build_nightly_job(executor_from_env())
    return dg.Definitions(
        assets=assets,
        jobs=[job],
        schedules=[build_nightly_schedule(job, installation.timezone)],
        resources={"skolon": resource},
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()


def nightly_job() -> dg.JobDefinition:
    """The nightly job, rebuilt from the environment: the target of `dg.reconstructable` for runs whose steps
    execute in their own processes."""
    from skolon_pipeline.defs.schedules import NIGHTLY_JOB

    return build_defs().resolve_job_def(NIGHTLY_JOB)
