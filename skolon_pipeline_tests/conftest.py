from __future__ import annotations

import datetime as dt
import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from skolon_pipeline import night
from skolon_pipeline.config import Settings, load_installation
from skolon_pipeline.publish import tables
from skolon_pipeline_tests import hypothesis_profiles  # noqa: F401 - registers and loads the Hypothesis profiles
from skolon_pipeline_tests.registry import Registry

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@dataclass
class Night:
    """One evaluated and published night, queried the way an analyst would."""

    warehouse: Path
    as_of: dt.date
    conservation: dict

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def users(self) -> dict[str, str]:
        """user_id → role"""
        return dict(self.query("SELECT user_id, role FROM nightly.users WHERE as_of = ?", [self.as_of]))

    def groups(self) -> set[str]:
        return {r[0] for r in self.query("SELECT group_id FROM nightly.groups WHERE as_of = ?", [self.as_of])}

    def memberships(self) -> set[tuple[str, str, str]]:
        return set(self.query("SELECT group_id, user_id, role FROM nightly.memberships WHERE as_of = ?", [self.as_of]))

    def reasons(self, record_id: str) -> set[str]:
        return {
            r[0]
            for r in self.query(
                "SELECT reason_code FROM nightly.exclusions WHERE as_of = ? AND record_id = ?", [self.as_of, record_id]
            )
        }

    def exclusion(self, record_id: str, code: str) -> dict:
        rows = self.query(
            """SELECT entity_type, person_id, group_id, school_id, detail, visible_from FROM nightly.exclusions
               WHERE as_of = ? AND record_id = ? AND reason_code = ?""",
            [self.as_of, record_id, code],
        )
        assert len(rows) == 1, f"expected one {code} row for {record_id}, got {rows}"
        keys = ("entity_type", "person_id", "group_id", "school_id", "detail", "visible_from")
        return dict(zip(keys, rows[0], strict=True))

    def warnings(self) -> list[tuple[str, str, str]]:
        return self.query("SELECT record_id, code, detail FROM nightly.warnings WHERE as_of = ?", [self.as_of])


def run_registry_in(
    folder: Path,
    registry: Registry,
    as_of: str = "2026-12-01",
    drop_date: str | None = None,
    rules: dict | None = None,
    warehouse: Path | None = None,
) -> Night:
    """Writes a Registry as a drop in `folder`, runs the night's stages without Dagster, returns a Night."""
    data_dir = folder / "data"
    registry.write(data_dir, drop_date=drop_date or as_of, rules=rules)
    settings = Settings(data_dir, warehouse or folder / "warehouse.duckdb", folder / "exports")
    night_date = dt.date.fromisoformat(as_of)
    evaluated = night.run_night(load_installation(data_dir), night_date, settings.warehouse, settings.staging_dir)
    return Night(settings.warehouse, night_date, evaluated.conservation)


@pytest.fixture
def run_registry(tmp_path):
    """run_registry_in(tmp_path, registry, ...): the night published in the test's own folder."""
    return functools.partial(run_registry_in, tmp_path)


def evaluate_registry_in(
    folder: Path, registry: Registry, as_of: str = "2026-12-01", drop_date: str | None = None, rules: dict | None = None
) -> Night:
    """Like run_registry_in, but the night stops after the rules (nothing is published): its Night reads the rules'
    output under the names it is published as (nightly.*, the rows publish_night would insert). For tests of the
    readers; the rules are tested from canonical rows (canonical_rows.py), publishing in test_warehouse and
    test_history."""
    data_dir = folder / "data"
    registry.write(data_dir, drop_date=drop_date or as_of, rules=rules)
    night_date = dt.date.fromisoformat(as_of)
    return rules_night(night.evaluate_night(load_installation(data_dir), night_date, folder / "staging"), night_date)


@pytest.fixture
def evaluate_registry(tmp_path):
    """evaluate_registry_in(tmp_path, registry, ...)."""
    return functools.partial(evaluate_registry_in, tmp_path)


def rules_night(evaluated: night.Evaluated, as_of: dt.date) -> Night:
    """The night as the rules left it, read under the names it is published as: nightly.<table> holds the rows
    publish_night would insert (the distinct rows of the rules' out_<table>)."""
    with duckdb.connect(str(evaluated.rules_db)) as con:
        nightly_views(con, as_of)
    return Night(evaluated.rules_db, as_of, evaluated.conservation)


def nightly_views(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """nightly.<table> on a rules database: the rows publish_night would insert (the distinct rows of the
    rules' out_<table>)."""
    con.execute("CREATE SCHEMA nightly")
    for table in tables.PUBLISHED:
        con.execute(f"""CREATE VIEW nightly.{table.name} AS SELECT DISTINCT DATE '{as_of}' AS as_of,
                        {", ".join(table.content_columns)} FROM main.{table.rules_output}""")


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory, request) -> Path:
    """The shipped demo registry's night (2025-12-15) evaluated and published without Dagster: built once per
    test run and shared by the xdist workers (under a file lock in the run's common folder), which only read it."""
    from filelock import FileLock

    from skolon_pipeline.demo import DEMO_NIGHT

    base = tmp_path_factory.getbasetemp()
    root = base.parent if hasattr(request.config, "workerinput") else base  # the run's folder, above gw0, gw1 ...
    wh = root / "demo-warehouse" / "wh" / "warehouse.duckdb"
    with FileLock(str(root / "demo-warehouse.lock")):
        if not wh.exists():  # the publish renames the finished file into place
            night.run_night(load_installation(REPO / "data"), DEMO_NIGHT, wh, wh.parent / "staging")
    return wh


@pytest.fixture
def canon():
    """A Canonical (skolon_pipeline_tests.canonical_rows): the rules' tests build canonical rows, no drop."""
    from skolon_pipeline_tests.canonical_rows import Canonical

    return Canonical()


@pytest.fixture
def evaluate_rows(tmp_path):
    """Validates a Canonical's rows and runs the rules on them (no drop, nothing published); returns a Night."""

    def run(rows, as_of: str = "2026-12-01", rules: dict | None = None, drop_date: str | None = None) -> Night:
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=tmp_path))
        return rows.evaluate(staging, as_of=as_of, rules=rules, drop_date=drop_date)

    return run


@pytest.fixture(scope="module")
def evaluate_cases(tmp_path_factory):
    """For table-driven rules tests: every case of a table in one night (canonical_rows.evaluate_cases), evaluated
    once per module, set of cases, night and rules; returns (Night, case → id, school)."""
    from skolon_pipeline_tests import canonical_rows

    nights = {}

    def run(cases: dict, as_of: str = "2026-12-01", rules: dict | None = None):
        key = (tuple(sorted(cases)), as_of, repr(rules))
        if key not in nights:
            nights[key] = canonical_rows.evaluate_cases(tmp_path_factory.mktemp("cases"), cases, as_of, rules)
        return nights[key]

    return run
