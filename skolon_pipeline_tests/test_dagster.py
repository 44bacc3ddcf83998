"""The Dagster code location: definitions load, the schedule picks the right night, a materialization
publishes the roster, validation shows as asset checks, and a broken file fails its source clearly."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from skolon_pipeline.config import Settings, load_installation
from skolon_pipeline.definitions import build_defs
from skolon_pipeline.defs.exports import VALIDATION_FILES_KEY
from skolon_pipeline.defs.partitions import nightly_partitions
from skolon_pipeline.defs.resources import WAREHOUSE_POOL, SkolonResource
from skolon_pipeline.defs.roster import CONSERVATION_CHECK, ELIGIBILITY_KEY, PUBLISHED
from skolon_pipeline.defs.schedules import MAX_RUNTIME_SECONDS, NIGHTLY_JOB, NIGHTLY_SCHEDULE
from skolon_pipeline.defs.sources import (
    READABLE_CHECK,
    build_source_assets,
    extract_key,
    table_check_name,
    validate_key,
)
from skolon_pipeline_tests.registry import Registry

REPO = Path(__file__).resolve().parents[1]
NIGHT = "2026-11-20"


@pytest.fixture
def settings(tmp_path) -> Settings:
    reg = Registry()
    school = reg.school()
    student = reg.student(school, start="2026-02-30")  # INVALID_RECORD
    klass = reg.group(school, members=[student, reg.student(school)])
    reg.teach(school, klass)
    reg.write(tmp_path / "data", drop_date="2026-11-19")
    return Settings(tmp_path / "data", tmp_path / "wh" / "warehouse.duckdb", tmp_path / "exports")


def test_asset_graph_reads_as_the_pipeline_stages(settings):
    defs = build_defs(settings)
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {
        "extract/testby": "extract",
        "validate/testby": "validate",
        "rules/eligibility": "rules",
        "rules/change_set": "rules",
        "exports/validation_files": "exports",
        "diagnostics/sources": "diagnostics",
        **{key.to_user_string(): group for key, group, _ in PUBLISHED.values()},
    }
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key} has no description"
        assert node.kinds, f"{key} has no kinds"
    assert graph.get(dg.AssetKey(["roster", "users"])).pools == {WAREHOUSE_POOL}
    assert graph.get(VALIDATION_FILES_KEY).pools == {WAREHOUSE_POOL}
    assert dg.AssetKey(["diagnostics", "exclusions"]) in graph.get(VALIDATION_FILES_KEY).parent_keys
    assert graph.get(validate_key("testby")).parent_keys == {extract_key("testby")}


def test_every_asset_has_an_owner_and_personal_data_is_tagged_pii(settings):
    graph = build_defs(settings).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).owners == ["team:skolon-sync"], key
    pii = {key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).tags.get("pii") == "true"}
    assert {
        "extract/testby",
        "validate/testby",
        "rules/eligibility",
        "roster/users",
        "roster/memberships",
        "diagnostics/excluded_persons",
        "exports/validation_files",
    } <= pii
    assert not pii & {"roster/schools", "roster/groups", "diagnostics/excluded_groups", "diagnostics/sources"}
    assert graph.get(dg.AssetKey(["roster", "users"])).metadata["dagster/table_name"] == "roster.users"
    # The roster is late after a day and a few hours without a new night.
    fresh = graph.get(dg.AssetKey(["roster", "users"])).freshness_policy
    assert fresh.warn_window.to_timedelta() == dt.timedelta(hours=27)
    assert fresh.fail_window.to_timedelta() == dt.timedelta(hours=36)
    assert graph.get(dg.AssetKey(["diagnostics", "exclusions"])).freshness_policy is None


def test_code_versions_follow_the_sql_that_computes_each_asset(settings):
    import hashlib

    graph = build_defs(settings).resolve_asset_graph()
    rules = hashlib.sha256()
    for name in ("rules/roster.sql", "rules/school_counts.sql"):
        rules.update(name.encode() + b"\0" + (REPO / "skolon_pipeline" / name).read_bytes())
    assert graph.get(ELIGIBILITY_KEY).code_version == rules.hexdigest()[:16]
    assert graph.get(dg.AssetKey(["roster", "users"])).code_version == rules.hexdigest()[:16]
    versions = {graph.get(k).code_version for k in (extract_key("testby"), ELIGIBILITY_KEY, VALIDATION_FILES_KEY)}
    assert len(versions) == 3 and None not in versions


@pytest.mark.parametrize(
    "tick, night",
    [
        # 02:00 Stockholm is 01:00 UTC in winter and 00:00 UTC in summer: the partition is the Stockholm date.
        (dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))), "2026-11-21"),
        (dt.datetime(2026, 6, 15, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2026-06-15"),
    ],
    ids=["winter", "summer"],
)
def test_schedule_tick_runs_the_night_that_has_just_begun(settings, tick, night):
    defs = build_defs(settings)
    schedule = defs.resolve_schedule_def(NIGHTLY_SCHEDULE)  # built from the partitioned job
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Stockholm"
    with dg.build_schedule_context(scheduled_execution_time=tick, repository_def=defs.get_repository_def()) as context:
        run_request = schedule.evaluate_tick(context).run_requests[0]
    assert run_request.partition_key == night


@pytest.mark.slow
def test_materialize_publishes_the_night_with_checks_and_metadata(settings):
    defs = build_defs(settings)
    job = defs.resolve_job_def(NIGHTLY_JOB)
    result = job.execute_in_process(partition_key=NIGHT, instance=dg.DagsterInstance.ephemeral())
    assert result.success

    checks = {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}
    persons_check = checks[(validate_key("testby"), table_check_name("enrolments"))]
    assert not persons_check.passed
    failure_cases = persons_check.metadata["failure_cases"].value
    assert failure_cases[0]["field"] == "start_date" and failure_cases[0]["check"] == "iso_date"
    assert "2026-02-30" not in json.dumps(failure_cases)  # ids and field names only
    assert checks[(validate_key("testby"), table_check_name("groups"))].passed
    assert checks[(ELIGIBILITY_KEY, CONSERVATION_CHECK)].passed

    users = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(["roster", "users"])]
    metadata = users[0].materialization.metadata
    assert metadata["dagster/row_count"].value == 2
    assert metadata["source/testby"].value == 2  # a number per source every night: the UI plots it
    exclusions = next(
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["diagnostics", "exclusions"])
    ).materialization.metadata
    assert exclusions["reason/INVALID_RECORD"].value >= 1
    assert [c.name for c in metadata["dagster/column_schema"].schema.columns][:7] == [
        "as_of",
        "user_id",
        "source_id",
        "given_name",
        "family_name",
        "email",
        "role",
    ]
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*), min(as_of) FROM roster.users").fetchone() == (2, dt.date(2026, 11, 20))
        assert con.execute(
            "SELECT reason_code FROM diagnostics.exclusions WHERE entity_type = 'person'"
        ).fetchall() == [("INVALID_RECORD",)]
        personal = [v for row in con.execute("SELECT user_id, email FROM roster.users").fetchall() for v in row]

    exports = [m for m in result.get_asset_materialization_events() if m.asset_key == VALIDATION_FILES_KEY]
    metadata = exports[0].materialization.metadata
    files = [v.value for k, v in metadata.items() if k.startswith("file/")]
    assert len(files) == 1 and Path(files[0]).is_file() and Path(files[0]).parts[-3] == NIGHT
    (school,) = metadata["schools"].value.records
    assert (school.data["students"], school.data["teachers"], school.data["excluded_persons"]) == (1, 1, 1)
    assert set(school.data) <= {
        "authority",
        "school",
        "school_unit_code",
        "school_id",
        "students",
        "teachers",
        "staff",
        "classes",
        "teaching_groups",
        "memberships",
        "excluded_persons",
        "excluded_groups",
        "excluded_memberships",
    }
    shown = json.dumps({k: str(v.value) for k, v in metadata.items()}) + json.dumps(
        [r.data for r in metadata["schools"].value.records]
    )
    assert personal and not [v for v in personal if v in shown]


@pytest.mark.slow
def test_materialize_with_dg_materialize_and_a_tmp_warehouse(settings):
    installation = load_installation(settings.data_dir)
    assets = build_source_assets(installation.sources[0], nightly_partitions(installation.timezone))
    result = dg.materialize(assets, partition_key=NIGHT, resources={"skolon": SkolonResource.from_settings(settings)})
    assert result.success
    staging = settings.staging_dir / NIGHT / "testby.duckdb"
    with duckdb.connect(str(staging), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM persons").fetchone()[0] == 3
        assert con.execute("SELECT count(*) FROM invalid_records").fetchone()[0] == 1


@pytest.mark.slow
def test_a_file_that_is_not_json_fails_the_source_and_publishes_nothing(settings):
    defs = build_defs(settings)
    job = defs.resolve_job_def(NIGHTLY_JOB)
    assert job.execute_in_process(partition_key=NIGHT, instance=dg.DagsterInstance.ephemeral()).success
    drop = settings.data_dir / "registries" / "testby" / "2026-11-21"
    drop.mkdir()
    for f in (settings.data_dir / "registries" / "testby" / "2026-11-19").iterdir():
        (drop / f.name).write_bytes(f.read_bytes())
    (drop / "groups.json").write_text("<html>502 Bad Gateway</html>", encoding="utf-8")

    result = job.execute_in_process(
        partition_key="2026-11-21", instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    # The source's extract reports it as a failed ERROR check (source isolation: it does not raise); with no
    # other source to publish, the rules step fails and nothing is published.
    readable = next(c for c in result.get_asset_check_evaluations() if c.check_name == READABLE_CHECK)
    assert not readable.passed and readable.severity == dg.AssetCheckSeverity.ERROR
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "rules__eligibility"
    assert "every source failed; nothing is published" in failure.step_failure_data.error.message
    assert "source 'testby'" in failure.step_failure_data.error.message
    assert "groups.json" in failure.step_failure_data.error.message
    assert "not valid JSON" in failure.step_failure_data.error.message
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT DISTINCT as_of FROM roster.users").fetchall() == [(dt.date(2026, 11, 20),)]


@pytest.mark.slow
def test_dg_check_defs_passes(settings):
    """`dg check defs` ([tool.dg] in pyproject.toml) loads the code location as `dagster dev` would."""
    env = {
        "SKOLON_DATA_DIR": str(settings.data_dir),
        "PATH": _path(),
        "PYTHONPATH": str(REPO),
        "HOME": str(settings.data_dir),
    }
    proc = subprocess.run(["dg", "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr
    broken = subprocess.run(
        ["dg", "check", "defs"],
        cwd=REPO,
        env={**env, "SKOLON_DATA_DIR": str(settings.data_dir / "x")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert broken.returncode != 0


def _path() -> str:
    import os

    return os.environ.get("PATH", "")


def test_a_stuck_scheduled_run_is_ended_by_run_monitoring_before_the_next_night(settings):
    """A run launched by the schedule or the UI that waits on a pool slot (or hangs) is ended by the daemon's run
    monitoring after the job's dagster/max_runtime, which leaves room for the next night."""
    job = build_defs(settings).resolve_job_def(NIGHTLY_JOB)
    assert int(job.tags["dagster/max_runtime"]) == MAX_RUNTIME_SECONDS
    assert 3600 <= MAX_RUNTIME_SECONDS < 24 * 3600
    shipped = next(p for p in (REPO / "dagster.yaml", REPO / "skolon_pipeline" / "dagster.yaml") if p.exists())
    import yaml

    assert yaml.safe_load(shipped.read_text(encoding="utf-8"))["run_monitoring"]["enabled"] is True
