"""A frozen registry is noticed (issue 14): a drop older than rules.max_drop_age_days still runs, but gives
DROP_STALE, a failed WARN check `drop_fresh` on extract/<source>, a summary line, and exit code 5 unless
--allow-stale; the summary always prints each source's drop date."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from skolon_pipeline import cli
from skolon_pipeline.config import ConfigError, Settings, load_installation
from skolon_pipeline.definitions import build_defs
from skolon_pipeline.defs.schedules import NIGHTLY_JOB
from skolon_pipeline.defs.sources import DROP_FRESH_CHECK
from skolon_pipeline.rules.freshness import DROP_STALE, Drop
from skolon_pipeline.summary import summary_lines
from skolon_pipeline_tests.registry import Registry

REPO = Path(__file__).resolve().parents[1]


def _registry() -> Registry:
    reg = Registry()
    school = reg.school()
    reg.group(school, members=[reg.student(school) for _ in range(3)])
    return reg


@pytest.mark.parametrize(
    ("age", "max_age", "stale"), [(0, 3, False), (3, 3, False), (4, 3, True), (10, 3, True), (1, 0, True)]
)
def test_a_drop_is_stale_when_older_than_max_drop_age_days(age, max_age, stale):
    night = dt.date(2026, 11, 11)
    assert Drop("x", night - dt.timedelta(days=age), max_age).stale(night) is stale
    assert not Drop("x", None, max_age, read=False).stale(night)


def test_a_ten_day_old_drop_runs_but_is_stale(run_registry):
    night_ = run_registry(_registry(), as_of="2026-11-11", drop_date="2026-11-01")
    assert len(night_.users()) == 3  # the night still runs
    (warning,) = [w for w in night_.warnings() if w[1] == DROP_STALE]
    assert warning[0] == "testby" and "2026-11-01" in warning[2] and "10 days" in warning[2]
    assert night_.query(
        "SELECT source_id, drop_date, drop_age_days, max_drop_age_days, status FROM diagnostics.source_drops"
    ) == [("testby", dt.date(2026, 11, 1), 10, 3, "stale")]


def test_a_per_source_max_drop_age_days_and_a_fresh_drop(run_registry, tmp_path):
    reg = _registry()
    reg.write(tmp_path / "data", drop_date="2026-11-01", source_rules={"max_drop_age_days": 14})
    assert load_installation(tmp_path / "data").sources[0].rules.max_drop_age_days == 14
    fresh = run_registry(reg, as_of="2026-11-02", drop_date="2026-11-01")
    assert not [w for w in fresh.warnings() if w[1] == DROP_STALE]
    assert fresh.query("SELECT drop_age_days, status FROM diagnostics.source_drops") == [(1, "fresh")]
    text = "\n".join(summary_lines(fresh.warehouse, fresh.as_of))  # the summary always names the drop
    assert "drop of 2026-11-01 (1 day old)" in text and "STALE" not in text
    (tmp_path / "data" / "sources.yaml").write_text(
        (tmp_path / "data" / "sources.yaml").read_text().replace("rules:", "rules:\n  max_drop_age_days: -1", 1)
    )
    with pytest.raises(ConfigError, match="max_drop_age_days"):
        load_installation(tmp_path / "data")


@pytest.mark.slow  # two Dagster runs of the nightly job
def test_dagster_check_drop_fresh_fails_with_warn_severity(tmp_path):
    data = tmp_path / "data"
    _registry().write(data, drop_date="2026-11-01")
    job = build_defs(Settings(data, tmp_path / "wh.duckdb", tmp_path / "exports")).resolve_job_def(NIGHTLY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    stale = job.execute_in_process(partition_key="2026-11-11", instance=instance)
    assert stale.success  # a warning, not a failure
    (check,) = [c for c in stale.get_asset_check_evaluations() if c.check_name == DROP_FRESH_CHECK]
    assert check.asset_key == dg.AssetKey(["extract", "testby"])
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["drop_age_days"].value == 10
    fresh = job.execute_in_process(partition_key="2026-11-02", instance=instance)
    assert [c.passed for c in fresh.get_asset_check_evaluations() if c.check_name == DROP_FRESH_CHECK] == [True]


@pytest.mark.slow  # `skolon-pipeline run` in a subprocess, three nights
def test_cli_exits_5_unless_allow_stale_and_always_prints_the_drop_date(tmp_path):
    data = tmp_path / "data"
    _registry().write(data, drop_date="2026-11-01")
    env = {
        "SKOLON_DATA_DIR": str(data),
        "SKOLON_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "SKOLON_EXPORT_DIR": str(tmp_path / "exports"),
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
    }

    def run(date: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "skolon_pipeline.cli", "run", "--as-of", date, "--executor", "in_process", *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    stale = run("2026-11-11")
    assert stale.returncode == cli.EXIT_STALE == 5, stale.stdout + stale.stderr
    assert "drop of 2026-11-01 (10 days old): STALE" in stale.stdout
    assert "published, but 1 source(s) sent no new drop (DROP_STALE)" in stale.stderr
    assert "source testby: the newest drop is dated 2026-11-01, 10 days old" in stale.stderr
    allowed = run("2026-11-11", "--allow-stale")
    assert allowed.returncode == 0 and "allowed by --allow-stale" in allowed.stderr
