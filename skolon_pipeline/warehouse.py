"""The DuckDB warehouse (CONTRACT §5): every published night, and the latest one as `roster.*`/`diagnostics.*`.

Each night is stored whole in the `nightly` schema, keyed by `as_of`. Publishing a night deletes that night's
rows and inserts the new ones in one transaction, so re-running a night replaces exactly that night and a
run killed midway leaves the previous state complete. `roster.*`, `diagnostics.exclusions` and
`diagnostics.warnings` are views of the greatest published night, so backfilling an older night never
replaces today's roster.
"""

from __future__ import annotations

import datetime as dt
import os
from importlib import resources
from pathlib import Path

import duckdb

from skolon_pipeline.duck import scalar

# (published table, columns). Column order follows CONTRACT §5; columns are only ever added.
TABLES: dict[str, str] = {
    "schools": """as_of DATE, school_id VARCHAR, source_id VARCHAR, name VARCHAR, school_unit_code VARCHAR,
        organisation_id VARCHAR, organisation_name VARCHAR""",
    "users": """as_of DATE, user_id VARCHAR, source_id VARCHAR, given_name VARCHAR, family_name VARCHAR,
        email VARCHAR, role VARCHAR, protected_identity BOOLEAN, civic_no_hash VARCHAR""",
    "school_affiliations": """as_of DATE, user_id VARCHAR, school_id VARCHAR, role VARCHAR, start_date DATE,
        end_date DATE, source_id VARCHAR""",
    "groups": """as_of DATE, group_id VARCHAR, source_id VARCHAR, school_id VARCHAR, name VARCHAR,
        group_type VARCHAR, start_date DATE, end_date DATE""",
    "memberships": """as_of DATE, group_id VARCHAR, user_id VARCHAR, role VARCHAR, start_date DATE,
        end_date DATE, source_id VARCHAR""",
    "exclusions": """as_of DATE, source_id VARCHAR, entity_type VARCHAR, record_id VARCHAR, person_id VARCHAR,
        group_id VARCHAR, school_id VARCHAR, reason_code VARCHAR, detail VARCHAR, visible_from DATE""",
    "warnings": """as_of DATE, source_id VARCHAR, entity_type VARCHAR, record_id VARCHAR, code VARCHAR,
        detail VARCHAR""",
    # Who and what is held back (names for the validation files and `explain`; never a civic number).
    "excluded_persons": """as_of DATE, source_id VARCHAR, person_id VARCHAR, given_name VARCHAR,
        family_name VARCHAR, email VARCHAR, role VARCHAR, school_id VARCHAR, protected_identity BOOLEAN""",
    "excluded_groups": """as_of DATE, source_id VARCHAR, group_id VARCHAR, school_id VARCHAR, name VARCHAR,
        group_type VARCHAR, start_date DATE, end_date DATE""",
}

# published table → the view analysts read
VIEWS: dict[str, str] = {
    "schools": "roster.schools",
    "users": "roster.users",
    "school_affiliations": "roster.school_affiliations",
    "groups": "roster.groups",
    "memberships": "roster.memberships",
    "exclusions": "diagnostics.exclusions",
    "warnings": "diagnostics.warnings",
    "excluded_persons": "diagnostics.excluded_persons",
    "excluded_groups": "diagnostics.excluded_groups",
}

# The relations a per-night query (school_counts.sql, the export sheets) reads, by plain name → published table.
NIGHT_RELATIONS: dict[str, str] = {
    "schools": "schools",
    "users": "users",
    "school_affiliations": "school_affiliations",
    "groups": "groups",
    "memberships": "memberships",
    "exclusions": "exclusions",
    "excluded_persons": "excluded_persons",
    "excluded_groups": "excluded_groups",
    "warnings": "warnings",
}

LATEST_NIGHT = "(SELECT max(as_of) FROM nightly.nights)"


def private_dir(path: Path) -> Path:
    """Creates a folder readable by its owner only (personal data lives below it)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def connect(warehouse: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    if read_only:
        return duckdb.connect(str(warehouse), read_only=True)
    private_dir(warehouse.parent)
    con = duckdb.connect(str(warehouse))
    os.chmod(warehouse, 0o600)
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS nightly")
    con.execute("CREATE SCHEMA IF NOT EXISTS roster")
    con.execute("CREATE SCHEMA IF NOT EXISTS diagnostics")
    con.execute(
        """CREATE TABLE IF NOT EXISTS nightly.nights (
            as_of DATE PRIMARY KEY, published_at TIMESTAMP WITH TIME ZONE, run_id VARCHAR, sources VARCHAR[])"""
    )
    for table, columns in TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS nightly.{table} ({columns})")
        # A warehouse written by an earlier version gets the columns added since (columns are only ever added).
        for column in columns.split(","):
            con.execute(f"ALTER TABLE nightly.{table} ADD COLUMN IF NOT EXISTS {column.strip()}")
        con.execute(f"CREATE OR REPLACE VIEW {VIEWS[table]} AS SELECT * FROM nightly.{table} WHERE as_of = {LATEST_NIGHT}")
    # Over the roster/diagnostics views, so it follows whatever stores the nights underneath.
    con.execute(f"CREATE OR REPLACE VIEW diagnostics.school_counts AS {bind_latest(sql_file('school_counts.sql'))}")


def sql_file(name: str) -> str:
    return resources.files("skolon_pipeline.rules").joinpath(name).read_text(encoding="utf-8")


def _bind(query: str, relations: dict[str, str]) -> str:
    ctes = ", ".join(f"{name} AS ({source})" for name, source in relations.items())
    return f"WITH {ctes} SELECT * FROM ({query})"


def bind_latest(query: str) -> str:
    """`query`, reading the NIGHT_RELATIONS by plain name, over the latest night's roster.*/diagnostics.* views."""
    return _bind(query, {name: f"FROM {VIEWS[table]}" for name, table in NIGHT_RELATIONS.items()})


def use_night(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """Temp views named as in NIGHT_RELATIONS over one published night, for queries that read them by plain
    name (school_counts.sql, the export sheets, explain). Works on a read-only connection."""
    for name, table in NIGHT_RELATIONS.items():
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM nightly.{table} WHERE as_of = DATE '{as_of.isoformat()}'"
        )


def published_nights(con: duckdb.DuckDBPyConnection) -> list[dt.date]:
    try:
        return [r[0] for r in con.execute("SELECT as_of FROM nightly.nights ORDER BY as_of").fetchall()]
    except duckdb.CatalogException:
        return []


def publish_night(
    con: duckdb.DuckDBPyConnection, rules_db: Path, as_of: dt.date, run_id: str, source_ids: list[str]
) -> dict[str, int]:
    """Replaces night `as_of` with the rules' output in one transaction; returns rows written per table."""
    ensure_schema(con)
    con.execute(f"ATTACH '{str(rules_db).replace(chr(39), chr(39) * 2)}' AS rules_out (READ_ONLY)")
    counts: dict[str, int] = {}
    try:
        con.execute("BEGIN TRANSACTION")
        for table in TABLES:
            con.execute(f"DELETE FROM nightly.{table} WHERE as_of = ?", [as_of])
            con.execute(f"INSERT INTO nightly.{table} BY NAME SELECT * FROM rules_out.main.out_{table}")
            counts[table] = scalar(con, f"SELECT count(*) FROM nightly.{table} WHERE as_of = ?", [as_of])
        con.execute(
            "INSERT OR REPLACE INTO nightly.nights VALUES (?, current_timestamp, ?, ?)", [as_of, run_id, source_ids]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DETACH rules_out")
    return counts


def latest_night(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    try:
        return scalar(con, "SELECT max(as_of) FROM nightly.nights")
    except duckdb.CatalogException:
        return None


def column_schema(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, type) of a published table, for Dagster's column-schema metadata."""
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE nightly.{table}").fetchall()]
