"""The nightly job and its schedule: 02:00 in the installation's time zone, for the night that has just begun."""

import dagster as dg

NIGHTLY_JOB = "nightly_roster"
NIGHTLY_SCHEDULE = "nightly_roster_schedule"
NIGHTLY_CRON = "0 2 * * *"


def build_nightly_job(executor_def: dg.ExecutorDefinition | None = None):
    # Partitioned by the nightly partitions of the assets it selects.
    return dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.all(),
        executor_def=executor_def,
        description="Extract, validate, evaluate and publish one night's roster from every configured source.",
    )


def build_nightly_schedule(job, timezone: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=NIGHTLY_SCHEDULE,
        cron_schedule=NIGHTLY_CRON,
        execution_timezone=timezone,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # The tick's own date in the installation's zone is the night's partition (CONTRACT §6).
        night = context.scheduled_execution_time.date().isoformat()
        return dg.RunRequest(run_key=night, partition_key=night)

    return nightly
