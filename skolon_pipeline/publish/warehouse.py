"""The DuckDB warehouse (CONTRACT §5): every published night, and the latest one as `roster.*`/`diagnostics.*`.

Each night is stored whole in the `nightly` schema, keyed by `as_of`. Publishing a night deletes that night's
rows and inserts the new ones in one transaction, so re-running a night replaces exactly that night and a
run killed midway leaves the previous state complete. `roster.*`, `diagnostics.exclusions` and
`diagnostics.warnings` are views of the greatest published night, so backfilling an older night never
replaces today's roster.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from skolon_pipeline import duck
from skolon_pipeline.publish import guard, history
from skolon_pipeline.duck import scalar
from skolon_pipeline.files import owner_only, private_dir, private_file
from skolon_pipeline.publish.guard import GuardResult, Policies

# (published table, columns). Column order follows CONTRACT §5; columns are only ever added.
TABLES: dict[str, str] = {
    "schools": """as_of DATE, school_id VARCHAR, source_id VARCHAR, name VARCHAR, school_unit_code VARCHAR,
        organisation_id VARCHAR, organisation_name VARCHAR, stale_since DATE""",
    "users": """as_of DATE, user_id VARCHAR, source_id VARCHAR, given_name VARCHAR, family_name VARCHAR,
        email VARCHAR, role VARCHAR, protected_identity BOOLEAN, civic_no_hash VARCHAR, stale_since DATE""",
    "school_affiliations": """as_of DATE, user_id VARCHAR, school_id VARCHAR, role VARCHAR, start_date DATE,
        end_date DATE, source_id VARCHAR, stale_since DATE""",
    "groups": """as_of DATE, group_id VARCHAR, source_id VARCHAR, school_id VARCHAR, name VARCHAR,
        group_type VARCHAR, start_date DATE, end_date DATE, stale_since DATE""",
    "memberships": """as_of DATE, group_id VARCHAR, user_id VARCHAR, role VARCHAR, start_date DATE,
        end_date DATE, source_id VARCHAR, stale_since DATE""",
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


def connect(warehouse: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    if read_only:
        return duck.connect(warehouse, read_only=True)
    private_dir(warehouse.parent, owned=False)
    with owner_only():
        con = duck.connect(warehouse)
    private_file(warehouse)
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Schemas, history tables and the views over them; migrates a warehouse whose nightly.* were tables."""
    con.execute("CREATE SCHEMA IF NOT EXISTS nightly")
    con.execute("CREATE SCHEMA IF NOT EXISTS roster")
    con.execute("CREATE SCHEMA IF NOT EXISTS diagnostics")
    con.execute(
        """CREATE TABLE IF NOT EXISTS nightly.nights (
            as_of DATE PRIMARY KEY, published_at TIMESTAMP WITH TIME ZONE, run_id VARCHAR, sources VARCHAR[])"""
    )
    legacy = [t for t in TABLES if _is_base_table(con, "nightly", t)]
    con.execute("BEGIN TRANSACTION")
    try:
        history.ensure_history(con, TABLES)
        for table in legacy:
            _migrate(con, table)
        if legacy:
            _migrate_changes(con)
        for table, definition in TABLES.items():
            cols = ", ".join(f"h.{c}" for c in history.content_columns(definition))
            con.execute(
                f"""CREATE OR REPLACE VIEW nightly.{table} AS
                    SELECT n.as_of, {cols} FROM nightly.nights n JOIN history.{table} h
                      ON h.valid_from <= n.as_of AND (h.valid_to IS NULL OR h.valid_to > n.as_of)"""
            )
            # Rows still open are exactly the latest published night's.
            con.execute(
                f"""CREATE OR REPLACE VIEW {VIEWS[table]} AS
                    SELECT {LATEST_NIGHT} AS as_of, {cols} FROM history.{table} h WHERE h.valid_to IS NULL"""
            )
        # Over the roster/diagnostics views, so it follows whatever stores the nights underneath.
        con.execute(f"CREATE OR REPLACE VIEW diagnostics.school_counts AS {bind_latest(sql_file('school_counts.sql'))}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _is_base_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        """SELECT table_type FROM information_schema.tables
           WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?""",
        [schema, table],
    ).fetchall()
    return bool(rows) and rows[0][0] == "BASE TABLE"


def _migrate(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """A warehouse from before history: nightly.<table> held every night whole. Its nights become intervals
    (and their change sets), and the table gives way to the view of the same name."""
    definition = TABLES[table]
    for column in definition.split(","):
        con.execute(f"ALTER TABLE nightly.{table} ADD COLUMN IF NOT EXISTS {column.strip()}")
    con.execute(f"DELETE FROM history.{table}")
    history.rebuild_from_snapshots(con, table, definition, f"nightly.{table}")
    con.execute(f"DROP TABLE nightly.{table}")


def _migrate_changes(con: duckdb.DuckDBPyConnection) -> None:
    nights = [r[0] for r in con.execute("SELECT as_of FROM nightly.nights ORDER BY as_of").fetchall()]
    con.execute("DELETE FROM history.changes")
    for previous, night in zip([None, *nights], nights, strict=False):
        history.record_changes(con, TABLES, night, previous)


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
    """`query`, reading the NIGHT_RELATIONS by plain name, over the latest night's roster.*/diagnostics.* views."""
    return _bind(query, {name: f"FROM {VIEWS[table]}" for name, table in NIGHT_RELATIONS.items()})


def use_night(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """Temp views named as in NIGHT_RELATIONS over one published night, for queries that read them by plain
    name (school_counts.sql, the export sheets, explain), and user_sync_dates/group_sync_dates as of that
    night. Works on a read-only connection."""
    d = f"DATE '{as_of.isoformat()}'"
    for name, table in NIGHT_RELATIONS.items():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {d} AS as_of, * FROM history.{table}_as_of({d})")
    # "first synced" / "last changed by sync" as they were on that night (history.user_sync_dates_as_of)
    for entity in ("user", "group"):
        con.execute(f"CREATE OR REPLACE TEMP VIEW {entity}_sync_dates AS SELECT * FROM history.{entity}_sync_dates_as_of({d})")


def published_nights(con: duckdb.DuckDBPyConnection) -> list[dt.date]:
    try:
        return [r[0] for r in con.execute("SELECT as_of FROM nightly.nights ORDER BY as_of").fetchall()]
    except duckdb.CatalogException:
        return []


@dataclass
class Published:
    """What publish_night did: rows per table when published, and the guard's verdict either way."""

    published: bool
    counts: dict[str, int]
    guard: GuardResult


def publish_night(
    con: duckdb.DuckDBPyConnection, rules_db: Path, as_of: dt.date, run_id: str, source_ids: list[str],
    policies: Policies,
) -> Published:
    """Publishes night `as_of` from the rules' output in one transaction, unless the guard holds it.

    Inside the transaction: the candidate is assembled (removal holds applied), compared with the last
    published night before it, and either recorded as held (nothing of it published) or written into the
    history intervals, nightly.nights, history.held_removals and history.changes (of this night and of the
    next published night, whose predecessor it may now be). A failure anywhere rolls everything back."""
    ensure_schema(con)
    with attached_rules(con, rules_db):
        con.execute("BEGIN TRANSACTION")
        try:
            previous, following = guard.previous_night(con, as_of), guard.next_night(con, as_of)
            guard.prepare_candidate(con, TABLES, as_of, previous, policies)
            verdict = guard.evaluate(con, TABLES, as_of, previous, policies)
            verdict.approved = guard.is_approved(con, as_of)
            if verdict.blocks:
                guard.record_hold(con, verdict, run_id)
                con.execute("COMMIT")
                return Published(False, {}, verdict)
            for table, definition in TABLES.items():
                history.apply_night(con, table, definition, as_of, following, f"cand_{table}")
            con.execute(
                "INSERT OR REPLACE INTO nightly.nights VALUES (?, current_timestamp, ?, ?)", [as_of, run_id, source_ids]
            )
            con.execute("DELETE FROM history.held_removals WHERE as_of = ?", [as_of])
            con.execute("INSERT INTO history.held_removals SELECT * FROM _held_removals")
            # The published rows are the candidate's, so its change set is the night's.
            con.execute("DELETE FROM history.changes WHERE as_of = ?", [as_of])
            con.execute("INSERT INTO history.changes BY NAME SELECT * FROM _candidate_changes")
            if following is not None:
                history.record_changes(con, TABLES, following, as_of)
            con.execute(
                "UPDATE history.held_nights SET published_at = current_timestamp WHERE as_of = ? AND approved_at IS NOT NULL",
                [as_of],
            )
            counts = {t: scalar(con, f"SELECT count(*) FROM cand_{t}") for t in TABLES}
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return Published(True, counts, verdict)


def latest_night(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    try:
        return scalar(con, "SELECT max(as_of) FROM nightly.nights")
    except duckdb.CatalogException:
        return None


def column_schema(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, type) of a published table, for Dagster's column-schema metadata."""
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE nightly.{table}").fetchall()]
