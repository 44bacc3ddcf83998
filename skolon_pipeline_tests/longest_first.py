"""Runs the test modules that take longest first (a pytest plugin, loaded by `-p` in pyproject.toml's addopts).

With `--dist loadscope` (also in addopts) pytest-xdist hands out whole modules, in collection order, to whichever
worker is free; a module's tests stay on one worker, so its module-scoped fixtures are built once. Started last, a
minute-long module would keep one core busy while the other idles; started first, the many short modules fill in
around it, and `-n 2` takes about half the suite's CPU time. The order is fixed (the same in every worker, as
xdist requires); modules not named here keep their collection order after these.
"""

from __future__ import annotations

import pytest

# Longest first (whole module, both tiers), as measured with `pytest -n 0 --durations=0`; re-measure and reorder
# when a module's cost changes a lot. Only the order matters.
LONGEST_MODULES = (
    "test_runtime.py",  # demo nights through the CLI beside readers, kills of whole process trees
    "test_history.py",  # several nights each, a publish killed at ten points
    "test_guard_cli.py",  # nights through the CLI and Dagster, held and approved
    "test_launched.py",  # `dagster job execute` in a subprocess, with the multiprocess executor
    "test_rules.py",
    "test_sources.py",
    "test_cli.py",  # the demo night through the CLI, a fresh clone's two nights
    "test_pull.py",
    "test_data_protection.py",
    "test_registries.py",
    "test_guard_losses.py",
    "test_freshness.py",
    "test_dagster.py",
    "test_exports.py",
    "test_parallel.py",
    "test_notify.py",
    "test_disk_full.py",
    "test_explain.py",
    "test_workbook_print.py",  # LibreOffice
)
_RANK = {name: rank for rank, name in enumerate(LONGEST_MODULES)}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: _RANK.get(item.path.name, len(LONGEST_MODULES)))  # stable: keeps the rest in order
