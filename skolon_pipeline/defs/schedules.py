"""The nightly job and its schedule: 02:00 in the installation's time zone, for the night that has just begun."""

import os

import dagster as dg

NIGHTLY_JOB = "nightly_roster"
NIGHTLY_SCHEDULE = "nightly_roster_schedule"
# A nightly run still going after 6 hours (waiting for a pool slot a stuck run holds, say) is ended by Dagster's
# run monitoring (enabled in the shipped dagster.yaml), so it can never block the next night; `skolon-pipeline
# run` bounds its own wait with --wait.
MAX_RUNTIME_SECONDS = 6 * 3600
EXECUTOR_CHOICES = ("auto", "in_process", "multiprocess")
# Worker processes of a multiprocess night are forked from one server that has imported the pipeline once.
PRELOADED_MODULES = ["skolon_pipeline.definitions"]


def runs_in_parallel(choice: str, source_count: int) -> bool:
    """`auto`: the steps of several sources in parallel processes; one source's steps in the run's process."""
    return choice == "multiprocess" or (choice == "auto" and source_count > 1)


def nightly_executor(parallel: bool) -> dg.ExecutorDefinition:
    """The executor configured on the nightly job itself, so a run launched by the schedule, the UI or `dagster job
    launch` (no run config) is as fast as `skolon-pipeline run`. Dagster's default would start a new Python
    process per step, each importing Dagster and the pipeline (about 80 s for the demo night instead of 15 s):
    one source runs in the run's own process; several run in worker processes forked from a server that has
    preloaded the code, as many at once as there are cores (the warehouse pool still admits one writer)."""
    if not parallel:
        return dg.in_process_executor
    return dg.multiprocess_executor.configured(
        {"max_concurrent": os.cpu_count() or 2, "start_method": {"forkserver": {"preload_modules": PRELOADED_MODULES}}},
        name="multiprocess_forkserver",
    )


def build_nightly_job(executor_def: dg.ExecutorDefinition | None = None):
    # Partitioned by the nightly partitions of the assets it selects.
    return dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.all(),
        executor_def=executor_def,
        tags={"dagster/max_runtime": str(MAX_RUNTIME_SECONDS)},
        description="Extract, validate, evaluate and publish one night's roster from every configured source.",
    )


def build_nightly_schedule(job) -> dg.ScheduleDefinition:
    """Dagster's schedule of the partitioned job: at 02:00 in the partitions' time zone it runs the newest
    partition, which (end_offset=1, defs/partitions.py) is the night that has just begun (CONTRACT §6)."""
    return dg.build_schedule_from_partitioned_job(
        job,
        name=NIGHTLY_SCHEDULE,
        hour_of_day=2,
        minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every night at 02:00 (the installation's time zone): the night that has just begun.",
    )
