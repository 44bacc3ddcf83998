"""Runs the eligibility rules (`roster.sql`) over every source's validated staging database.

The rules connection attaches each source's staging file read-only, unions their canonical tables into
`c_<table>` views, adds the night's settings per source, and leaves the results in `out_*` tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import duckdb

from skolon_pipeline.bounds import MAX_MESSAGE
from skolon_pipeline.calendar import effective_start, term_windows
from skolon_pipeline.config import Source
from skolon_pipeline.duck import row_counts
from skolon_pipeline.publish import tables
from skolon_pipeline.rules.freshness import Drop, record_drops
from skolon_pipeline.validate.canonical import CANONICAL_TABLES, OPTIONAL_TABLES

# Everything the rules read from a source's staging database.
STAGING_INPUTS = (
    *CANONICAL_TABLES,
    *(t for t in OPTIONAL_TABLES if t not in CANONICAL_TABLES),
    "invalid_records",
    "warnings",
)

# What roster.sql leaves: one out_<table> per published table.
OUTPUT_TABLES = tuple(t.rules_output for t in tables.PUBLISHED)


def _settings_rows(sources: list[Source], as_of: dt.date):
    for s in sources:
        r = s.rules
        yield (
            s.id,
            as_of,
            effective_start(as_of, r.term_starts, r.lookahead_days),
            r.teacher_requires_group,
            r.student_requires_group,
            list(r.group_types),
            list(r.teaching_duty_roles),
            list(r.school_email_domains),
        )


def load_settings(con: duckdb.DuckDBPyConnection, sources: list[Source], as_of: dt.date) -> None:
    con.execute(
        """CREATE OR REPLACE TABLE rule_settings (
            source_id VARCHAR, as_of DATE, effective_start DATE, teacher_requires_group BOOLEAN,
            student_requires_group BOOLEAN, group_types VARCHAR[], teaching_duty_roles VARCHAR[],
            school_email_domains VARCHAR[])"""
    )
    con.executemany("INSERT INTO rule_settings VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(_settings_rows(sources, as_of)))
    con.execute("CREATE OR REPLACE TABLE rule_terms (source_id VARCHAR, term_start DATE, window_start DATE)")
    rows = [
        (s.id, w.term_start, w.window_start)
        for s in sources
        for w in term_windows(s.rules.term_starts, s.rules.lookahead_days)
    ]
    if rows:
        con.executemany("INSERT INTO rule_terms VALUES (?, ?, ?)", rows)


def attach_staging(con: duckdb.DuckDBPyConnection, staging_files: Mapping[str, Path]) -> None:
    """Attaches each source's staging file and unions its tables into c_<table> views."""
    aliases = []
    for n, (_source_id, path) in enumerate(sorted(staging_files.items())):
        alias = f"src_{n}"  # never the source id itself: ids are data, not identifiers
        con.execute(f"ATTACH ? AS {alias} (READ_ONLY)", [str(path)])
        aliases.append(alias)
    for table in STAGING_INPUTS:
        union = " UNION ALL BY NAME ".join(f"SELECT * FROM {a}.main.{table}" for a in aliases)
        con.execute(f"CREATE OR REPLACE TEMP VIEW c_{table} AS {union}")


def run_rules(
    con: duckdb.DuckDBPyConnection,
    sources: list[Source],
    staging_files: Mapping[str, Path],
    as_of: dt.date,
    drops: Sequence[Drop] = (),
) -> dict[str, int]:
    """Evaluates the night; returns the row count of each out_* table. `drops`: the drop each source was read
    from (or not), for out_source_drops and the DROP_STALE warnings."""
    load_settings(con, sources, as_of)
    attach_staging(con, staging_files)
    con.execute(resources.files("skolon_pipeline.rules").joinpath("roster.sql").read_text(encoding="utf-8"))
    record_drops(con, as_of, list(drops))
    bound_details(con)
    return row_counts(con, OUTPUT_TABLES)


def bound_details(con: duckdb.DuckDBPyConnection) -> None:
    """Every reason and warning detail cut to MAX_MESSAGE characters (bounds.py): a detail may quote an id
    or a value the registry sent, and none is stored, shown or exported at full length."""
    keep = MAX_MESSAGE - 40
    for table in ("out_exclusions", "out_warnings"):
        con.execute(
            f"""UPDATE {table} SET detail = left(detail, $keep) || '… (' || (length(detail) - $keep)
                    || ' more characters)'
                WHERE length(detail) > $max""",
            {"keep": keep, "max": MAX_MESSAGE},
        )
