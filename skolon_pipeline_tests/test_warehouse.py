"""Publishing nights: idempotent per night, the latest night is what roster.* shows, a failure changes nothing."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from skolon_pipeline import night
from skolon_pipeline.config import load_installation
from skolon_pipeline.publish import publish, tables, warehouse
from skolon_pipeline.publish.guard import Policies
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


def test_a_failed_publish_leaves_the_previous_night_complete(installation, tmp_path):
    wh, staging = tmp_path / "wh.duckdb", tmp_path / "staging"
    night.run_night(installation, dt.date(2026, 11, 20), wh, staging)
    before = {t.name: _roster(wh, t.view) for t in tables.PUBLISHED}
    for source in installation.sources:
        night.validate(source.id, night.extract(source, dt.date(2026, 11, 26), staging).staging_file)
    evaluated = night.evaluate(installation, dt.date(2026, 11, 26), staging)

    # Fail after the first tables of the night were written, inside the transaction.
    real_execute = duckdb.DuckDBPyConnection.execute

    class Boom(RuntimeError):
        pass

    def failing_execute(con, sql, *args, **kwargs):
        if sql.startswith("INSERT INTO history.groups"):
            raise Boom("killed mid-publish")
        return real_execute(con, sql, *args, **kwargs)

    with warehouse.connect(wh) as con:
        proxy = _Proxy(con, failing_execute)
        with pytest.raises(Boom):
            publish.publish_night(proxy, evaluated.rules_db, dt.date(2026, 11, 26), "r", ["testby"],
                                    Policies.for_night(installation, dt.date(2026, 11, 26)))
    assert {t.name: _roster(wh, t.view) for t in tables.PUBLISHED} == before
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM nightly.users WHERE as_of = '2026-11-26'").fetchone()[0] == 0


class _Proxy:
    """A connection whose execute can be made to fail on a chosen statement."""

    def __init__(self, con, execute):
        self._con, self._execute = con, execute

    def execute(self, sql, *args, **kwargs):
        return self._execute(self._con, sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_warehouse_and_staging_are_private(installation, tmp_path):
    wh, staging = tmp_path / "private" / "wh.duckdb", tmp_path / "staging"
    night.run_night(installation, dt.date(2026, 11, 20), wh, staging)
    assert wh.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "private").stat().st_mode & 0o777 == 0o700
    assert (staging / "2026-11-20").stat().st_mode & 0o777 == 0o700


def test_every_file_of_a_night_is_owner_only(installation, tmp_path):
    """Warehouse, staging files, their WALs and every folder the pipeline creates: 0600 / 0700."""
    wh, staging = tmp_path / "new" / "deeper" / "wh.duckdb", tmp_path / "wh-staging" / "staging"
    night.run_night(installation, dt.date(2026, 11, 20), wh, staging)
    night.run_night(installation, dt.date(2026, 11, 20), wh, staging)  # again, over existing files
    created = [tmp_path / "new", *(tmp_path / "new").rglob("*"), tmp_path / "wh-staging",
               *(tmp_path / "wh-staging").rglob("*")]
    assert any(p.name.endswith(".duckdb") for p in created) and len(created) >= 8
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in created}
    expected = {k: oct(0o700 if (tmp_path / k).is_dir() else 0o600) for k in modes}
    assert modes == expected
