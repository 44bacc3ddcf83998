"""Publishing nights: idempotent per night, the latest night is what roster.* shows, everything owner-only.
(A publish that fails midway: test_history.test_a_publish_killed_midway_leaves_the_previous_night_and_history_intact.)"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from skolon_pipeline import night
from skolon_pipeline.config import load_installation
from skolon_pipeline_tests.modes import not_owner_only, tree
from skolon_pipeline_tests.registry import Registry


def _roster(path, table="roster.users"):
    with duckdb.connect(str(path), read_only=True) as con:
        return sorted(con.execute(f"SELECT * FROM {table}").fetchall())


@pytest.fixture
def installation(tmp_path):
    reg = Registry()
    school = reg.school()
    klass = reg.group(school, members=[reg.student(school), reg.student(school, start="2026-11-25")])
    reg.teach(school, klass)
    reg.write(tmp_path / "data", drop_date="2026-11-01")
    return load_installation(tmp_path / "data")


@pytest.mark.slow
def test_rerunning_a_night_replaces_exactly_that_night(installation, tmp_path):
    wh, staging = tmp_path / "wh.duckdb", tmp_path / "staging"
    night.run_night(installation, dt.date(2026, 11, 20), wh, staging)
    night.run_night(installation, dt.date(2026, 11, 21), wh, staging)
    first = _roster(wh)
    night.run_night(installation, dt.date(2026, 11, 21), wh, staging)
    assert _roster(wh) == first
    with duckdb.connect(str(wh), read_only=True) as con:
        per_night = dict(con.execute("SELECT as_of, count(*) FROM nightly.users GROUP BY 1").fetchall())
        assert per_night == {dt.date(2026, 11, 20): 2, dt.date(2026, 11, 21): 2}
        assert con.execute("SELECT count(*) FROM nightly.nights").fetchone()[0] == 2


@pytest.mark.slow
def test_backfilling_an_old_night_never_replaces_the_latest(installation, tmp_path):
    wh, staging = tmp_path / "wh.duckdb", tmp_path / "staging"
    night.run_night(installation, dt.date(2026, 11, 26), wh, staging)
    latest = _roster(wh)
    assert len(latest) == 3  # the student starting 2026-11-25 is in
    night.run_night(installation, dt.date(2026, 11, 10), wh, staging)
    assert _roster(wh) == latest
    assert {r[0] for r in _roster(wh, "diagnostics.exclusions")} <= {dt.date(2026, 11, 26)}
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM nightly.users WHERE as_of = '2026-11-10'").fetchone()[0] == 2


@pytest.mark.slow
def test_every_file_of_a_night_is_owner_only(installation, tmp_path):
    """Warehouse, staging files, their WALs and every folder the pipeline creates: 0600 / 0700."""
    wh, staging = tmp_path / "new" / "deeper" / "wh.duckdb", tmp_path / "wh-staging" / "staging"
    night.run_night(installation, dt.date(2026, 11, 20), wh, staging)
    night.run_night(installation, dt.date(2026, 11, 20), wh, staging)  # again, over existing files
    created = [*tree(tmp_path / "new"), *tree(tmp_path / "wh-staging")]
    assert wh in created and (staging / "2026-11-20") in created and len(created) >= 8
    assert not_owner_only(created) == {}
