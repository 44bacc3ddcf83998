"""Source isolation: when a source cannot be read, its part of the roster from the last published night is
carried over unchanged and flagged stale, so nobody loses access because an export broke.

Runs on the rules connection after `roster.sql`. The failed source's schools, users, school affiliations,
groups and memberships of the last night published before this one are copied into the `out_*` tables with
`stale_since` = the last night on which they were fresh (kept from that night when it was itself stale).
A record the sources read tonight provide (the same global id) wins over a carried one. Each failed source
gets a `SOURCE_FAILED` warning naming the problem and the night its rows come from.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from skolon_pipeline.duck import scalar
from skolon_pipeline.publish import tables

# published table → the key that identifies a row across sources
STALE_TABLES: dict[str, tuple[str, ...]] = {
    t.name: t.carry_over_key for t in tables.PUBLISHED if t.carry_over_key is not None
}


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? AND table_name = ? "
            "ORDER BY column_index",
            [catalog, schema, table],
        ).fetchall()
    ]


def _previous_night(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> dt.date | None:
    try:
        return scalar(con, "SELECT max(as_of) FROM wh.nightly.nights WHERE as_of < ?", [as_of])
    except duckdb.CatalogException:
        return None


def carry_over(con: duckdb.DuckDBPyConnection, warehouse: Path | None, as_of: dt.date, failed) -> dict[str, int]:
    """Adds the failed sources' last published rows to the out_* tables; returns rows carried per table."""
    for table in STALE_TABLES:
        con.execute(f"ALTER TABLE out_{table} ADD COLUMN IF NOT EXISTS stale_since DATE")
    if not failed:
        return {}
    failed_ids = [f.source_id for f in failed]
    previous = None
    attached = warehouse is not None and warehouse.exists()
    if attached:
        con.execute("ATTACH ? AS wh (READ_ONLY)", [str(warehouse)])
    try:
        previous = _previous_night(con, as_of) if attached else None
        carried: dict[str, int] = {}
        for table, key in STALE_TABLES.items():
            if previous is None:
                break
            target = _columns(con, scalar(con, "SELECT current_database()"), "main", f"out_{table}")
            available = set(_columns(con, "wh", "nightly", table))
            select = ", ".join(
                "?::DATE AS as_of"
                if c == "as_of"
                else (
                    "coalesce(c.stale_since, c.as_of) AS stale_since"
                    if "stale_since" in available
                    else "c.as_of AS stale_since"
                )
                if c == "stale_since"
                else f"c.{c}"
                if c in available
                else f"NULL AS {c}"
                for c in target
            )
            match = " AND ".join(f"o.{k} IS NOT DISTINCT FROM c.{k}" for k in key)
            before = scalar(con, f"SELECT count(*) FROM out_{table}")
            con.execute(
                f"""INSERT INTO out_{table} BY NAME
                SELECT {select} FROM wh.nightly.{table} c
                WHERE c.as_of = ? AND list_contains(?::VARCHAR[], c.source_id)
                  AND NOT EXISTS (SELECT 1 FROM out_{table} o WHERE {match})""",
                [as_of, previous, failed_ids],
            )
            carried[table] = scalar(con, f"SELECT count(*) FROM out_{table}") - before
    finally:
        if attached:
            con.execute("DETACH wh")
    for f in failed:
        origin = (
            f"its roster of {previous} is carried over, flagged stale"
            if previous
            else "no earlier night is published, so it has nothing in the roster tonight"
        )
        con.execute(
            "INSERT INTO out_warnings BY NAME SELECT ?::DATE AS as_of, ? AS source_id, 'source' AS entity_type, "
            "? AS record_id, 'SOURCE_FAILED' AS code, ? AS detail",
            [as_of, f.source_id, f.source_id, f"{f.message}; {origin}"],
        )
    return carried
