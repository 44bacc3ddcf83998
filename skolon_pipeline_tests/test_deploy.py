"""The shipped instance and executor configuration: the local dagster.yaml, and deploy/k8s for running the same
code on Kubernetes with Dagster's own engine (K8sRunLauncher, k8s_job_executor, PostgreSQL storage)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

from skolon_pipeline.config import Settings
from skolon_pipeline.definitions import build_defs
from skolon_pipeline.defs.schedules import NIGHTLY_JOB

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"


def test_local_instance_limits_every_pool_to_one_step():
    config, _ = dagster_instance_config(str(REPO / "skolon_pipeline"))
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_k8s_instance_config_loads_with_postgres_and_the_k8s_run_launcher(monkeypatch):
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB", "SKOLON_IMAGE"):
        monkeypatch.setenv(name, "x")
    config, _ = dagster_instance_config(str(K8S))
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert "postgres_db" in config["storage"]["postgres"]
    # The launcher's own config schema accepts the shipped settings.
    from dagster_k8s import K8sRunLauncher

    launcher_config = yaml.safe_load((K8S / "dagster.yaml").read_text())["run_launcher"]["config"]
    result = process_config(K8sRunLauncher.config_type(), launcher_config)
    assert result.success, result.errors


@pytest.fixture
def k8s_defs(monkeypatch):
    monkeypatch.setenv("SKOLON_EXECUTOR", "k8s")
    return build_defs(Settings(REPO / "data", REPO / "data" / "warehouse.duckdb", REPO / "data" / "exports"))


def test_k8s_executor_runs_each_step_in_its_own_pod_with_the_shipped_run_config(k8s_defs):
    from dagster_k8s import k8s_job_executor

    job = k8s_defs.resolve_job_def(NIGHTLY_JOB)
    assert job.executor_def is k8s_job_executor
    run_config = yaml.safe_load((K8S / "run_config.yaml").read_text())
    assert dg.validate_run_config(job, run_config)


def test_unknown_executor_is_a_configuration_error(monkeypatch):
    from skolon_pipeline.config import ConfigError

    monkeypatch.setenv("SKOLON_EXECUTOR", "spark")
    with pytest.raises(ConfigError, match="SKOLON_EXECUTOR"):
        build_defs(Settings(REPO / "data", REPO / "data" / "w.duckdb", REPO / "data" / "e"))
