"""The sensors that send `notify:`'s alerts (skolon_pipeline.notify): when a nightly run fails (a night held by
the guard, with the counts and the approve command; a night published with a failed source; any other failure),
and when a nightly run succeeded but read a stale drop (DROP_STALE: the registry may have stopped exporting).

Dagster's own `run_failure_sensor`, evaluated by the daemon (`dagster dev`, or dagster-daemon beside the
webserver in production) every 30 seconds, so an alert arrives within a minute of the run's end. It watches
every run of the nightly job on the instance, those `skolon-pipeline run` starts included (a run from the
command line has no code location: `monitor_all_code_locations`), and skips dry runs.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from skolon_pipeline import notify, runs
from skolon_pipeline.defs.guard import DRY_RUN_TAG
from skolon_pipeline.defs.resources import SkolonResource
from skolon_pipeline.defs.roster import SOURCES_KEY
from skolon_pipeline.defs.schedules import NIGHTLY_JOB

ALERT_SENSOR = "nightly_alerts"
STALE_ALERT_SENSOR = "nightly_stale_drop_alerts"
PARTITION_TAG = "dagster/partition"


def build_alert_sensor(resource: SkolonResource) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=ALERT_SENSOR,
        monitor_all_code_locations=True,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends notify: (sources.yaml) an e-mail and/or a webhook when a nightly run fails: a night "
        "held by the guard, a failed source, any other failure. Ids and counts only.",
    )
    def nightly_alerts(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        night = run.tags.get(PARTITION_TAG)
        skip = _skip(run, resource)
        if skip is not None:
            return skip
        installation = resource.installation()
        failures = [
            (e.step_key, runs.error_line(e.step_failure_data.error) if e.step_failure_data.error else "(no message)")
            for e in context.get_step_failure_events()
        ]
        alert = notify.alert_for_failed_run(
            resource.settings.warehouse,
            dt.date.fromisoformat(night),
            run.run_id,
            failures,
            SOURCES_KEY.to_python_identifier(),
        )
        _send(context, alert, installation.notify)

    return nightly_alerts


def build_stale_drop_sensor(resource: SkolonResource) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name=STALE_ALERT_SENSOR,
        monitor_all_code_locations=True,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends notify: (sources.yaml) an e-mail and/or a webhook when a nightly run published from a "
        "drop older than its source's max_drop_age_days (DROP_STALE). Source ids and dates only.",
    )
    def nightly_stale_drop_alerts(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        skip = _skip(run, resource)
        if skip is not None:
            return skip
        night = run.tags[PARTITION_TAG]
        alert = notify.alert_for_stale_sources(resource.settings.warehouse, dt.date.fromisoformat(night), run.run_id)
        if alert is None:
            return dg.SkipReason(f"night {night}: every source's drop was fresh")
        _send(context, alert, resource.installation().notify)

    return nightly_stale_drop_alerts


def _skip(run: dg.DagsterRun, resource: SkolonResource) -> dg.SkipReason | None:
    """Only nightly runs (not dry runs) of an installation with notify: send alerts."""
    if run.job_name != NIGHTLY_JOB or not run.tags.get(PARTITION_TAG) or run.tags.get(DRY_RUN_TAG):
        return dg.SkipReason(f"run {run.run_id}: not a nightly run")
    configured = resource.installation().notify
    if configured is None or not (configured.email or configured.webhook):
        return dg.SkipReason("no notify: in sources.yaml")
    return None


def _send(context, alert: notify.Alert, configured) -> None:
    problems = notify.send(alert, configured)
    for problem in problems:
        context.log.error(f"{alert.event} alert for night {alert.night}: {problem}")
    if not problems:
        context.log.info(f"{alert.event} alert for night {alert.night} sent")
