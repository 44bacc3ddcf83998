"""The DuckDB warehouse (CONTRACT §5): its schema, the views analysts read, and how readers open it.

Every published night is kept in `history.*` as validity intervals (publish/history.py) and shown per night
as the `nightly.*` views, keyed by `as_of`; `roster.*` and `diagnostics.*` are views of the greatest
published night, so backfilling an older night never replaces today's roster. The tables are described once
in publish/tables.py; the one transaction that writes a night is publish/publish.py.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import duckdb

from skolon_pipeline import duck
from skolon_pipeline.duck import scalar
from skolon_pipeline.files import owner_only, private_dir, private_file
from skolon_pipeline.publish import history, tables

LATEST_NIGHT = f"(SELECT max(as_of) FROM {tables.NIGHTS.qualified})"


def connect(warehouse: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to a warehouse file itself. The pipeline's readers use `snapshot.connect_published` and its
    writers `snapshot.rewrite` (which never open the published file for writing); this is for tests and tools
    working on a file of their own."""
    if read_only:
        return duck.connect(warehouse, read_only=True)
    private_dir(warehouse.parent, owned=False)
    with owner_only():
        con = duck.connect(warehouse, create=not Path(warehouse).exists())
    private_file(warehouse)
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Schemas, history tables and the views over them; migrates a warehouse whose nightly.* were tables."""
    con.execute("CREATE SCHEMA IF NOT EXISTS nightly")
    con.execute("CREATE SCHEMA IF NOT EXISTS roster")
    con.execute("CREATE SCHEMA IF NOT EXISTS diagnostics")
    con.execute(f"CREATE TABLE IF NOT EXISTS {tables.NIGHTS.qualified} ({tables.NIGHTS.ddl()})")
    legacy = [t for t in tables.PUBLISHED if _is_base_table(con, "nightly", t.name)]
    with duck.transaction(con):
        history.ensure_history(con)
        for table in legacy:
            _migrate(con, table)
        if legacy:
            _migrate_changes(con)
        for table in tables.PUBLISHED:
            cols = ", ".join(f"h.{c}" for c in table.content_columns)
            con.execute(
                f"""CREATE OR REPLACE VIEW nightly.{table.name} AS
                    SELECT n.as_of, {cols} FROM nightly.nights n JOIN history.{table.name} h
                      ON h.valid_from <= n.as_of AND (h.valid_to IS NULL OR h.valid_to > n.as_of)"""
            )
            # Rows still open are exactly the latest published night's.
            con.execute(
                f"""CREATE OR REPLACE VIEW {table.view} AS
                    SELECT {LATEST_NIGHT} AS as_of, {cols} FROM history.{table.name} h WHERE h.valid_to IS NULL"""
            )
        # Over the roster/diagnostics views, so it follows whatever stores the nights underneath.
        con.execute(f"CREATE OR REPLACE VIEW diagnostics.school_counts AS {bind_latest(sql_file('school_counts.sql'))}")


def _is_base_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        """SELECT table_type FROM information_schema.tables
           WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?""",
        [schema, table],
    ).fetchall()
    return bool(rows) and rows[0][0] == "BASE TABLE"


def _migrate(con: duckdb.DuckDBPyConnection, table: tables.Published) -> None:
    """A warehouse from before history: nightly.<table> held every night whole. Its nights become intervals
    (and their change sets), and the table gives way to the view of the same name."""
    for column in table.columns:
        con.execute(f"ALTER TABLE nightly.{table.name} ADD COLUMN IF NOT EXISTS {column.ddl}")
    con.execute(f"DELETE FROM history.{table.name}")
    history.rebuild_from_snapshots(con, table, f"nightly.{table.name}")
    con.execute(f"DROP TABLE nightly.{table.name}")


def _migrate_changes(con: duckdb.DuckDBPyConnection) -> None:
    nights = [r[0] for r in con.execute("SELECT as_of FROM nightly.nights ORDER BY as_of").fetchall()]
    con.execute("DELETE FROM history.changes")
    for previous, night in zip([None, *nights], nights, strict=False):
        history.record_changes(con, night, previous)


@contextmanager
def attached_rules(con: duckdb.DuckDBPyConnection, rules_db: Path):
    """The night's rules database attached read-only as `rules_out`."""
    con.execute("ATTACH ? AS rules_out (READ_ONLY)", [str(rules_db)])
    try:
        yield
    finally:
        con.execute("DETACH rules_out")


def sql_file(name: str) -> str:
    return resources.files("skolon_pipeline.rules").joinpath(name).read_text(encoding="utf-8")


def _bind(query: str, relations: dict[str, str]) -> str:
    ctes = ", ".join(f"{name} AS ({source})" for name, source in relations.items())
    return f"WITH {ctes} SELECT * FROM ({query})"


def bind_latest(query: str) -> str:
    """`query`, reading the published tables by plain name, over the latest night's roster.*/diagnostics.* views."""
    return _bind(query, {t.name: f"FROM {t.view}" for t in tables.PUBLISHED})


def use_night(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """Temp views named after the published tables over one published night, for queries that read them by
    plain name (school_counts.sql, the export sheets, explain), and user_sync_dates/group_sync_dates as of that
    night. Works on a read-only connection."""
    d = f"DATE '{as_of.isoformat()}'"
    for t in tables.PUBLISHED:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {t.name} AS SELECT {d} AS as_of, * FROM history.{t.name}_as_of({d})")
    # "first synced" / "last changed by sync" as they were on that night (history.user_sync_dates_as_of)
    for entity in ("user", "group"):
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {entity}_sync_dates AS SELECT * FROM history.{entity}_sync_dates_as_of({d})"
        )


def published_nights(con: duckdb.DuckDBPyConnection) -> list[dt.date]:
    try:
        return [r[0] for r in con.execute("SELECT as_of FROM nightly.nights ORDER BY as_of").fetchall()]
    except duckdb.CatalogException:
        return []


def latest_night(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    try:
        return scalar(con, "SELECT max(as_of) FROM nightly.nights")
    except duckdb.CatalogException:
        return None
