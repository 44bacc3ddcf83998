"""A frozen registry is noticed: each source's drop date for the night, and DROP_STALE when it is too old.

The run for night D reads the newest drop dated on or before D (CONTRACT §2). When a registry stops exporting,
that drop gets older every night while the night still publishes it; `rules.max_drop_age_days` (default 3,
per source) is how old it may be. An older drop still runs, but gets a `DROP_STALE` warning (entity `source`:
the drop date and its age), `out_source_drops` (published as `diagnostics.source_drops`) records every
source's drop date and age each night, the run summary and the validation file's Summary say so, the asset
check `drop_fresh` on `extract/<source>` fails with WARN severity, and `run` exits with code 5 unless
`--allow-stale`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from skolon_pipeline.publish import tables

DROP_STALE = "DROP_STALE"


@dataclass(frozen=True)
class Drop:
    """The drop a source was read from for a night (drop_date None: no drop could be read)."""

    source_id: str
    drop_date: dt.date | None
    max_drop_age_days: int
    read: bool = True

    def age_days(self, as_of: dt.date) -> int | None:
        return None if self.drop_date is None else (as_of - self.drop_date).days

    def stale(self, as_of: dt.date) -> bool:
        age = self.age_days(as_of)
        return age is not None and age > self.max_drop_age_days

    def status(self, as_of: dt.date) -> str:
        return "failed" if not self.read else "stale" if self.stale(as_of) else "fresh"

    def detail(self, as_of: dt.date) -> str:
        return (
            f"the newest drop is dated {self.drop_date}, {self.age_days(as_of)} days before the night "
            f"(max_drop_age_days {self.max_drop_age_days}): the registry may have stopped exporting"
        )


def record_drops(con: duckdb.DuckDBPyConnection, as_of: dt.date, drops: list[Drop]) -> None:
    """`out_source_drops` and the DROP_STALE rows of `out_warnings`, on the rules connection after roster.sql."""
    columns = ", ".join(c.ddl for c in tables.SOURCE_DROPS.columns)
    con.execute(f"CREATE OR REPLACE TABLE {tables.SOURCE_DROPS.rules_output} ({columns})")
    if drops:
        con.executemany(
            f"INSERT INTO {tables.SOURCE_DROPS.rules_output} VALUES (?, ?, ?, ?, ?, ?)",
            [[as_of, d.source_id, d.drop_date, d.age_days(as_of), d.max_drop_age_days, d.status(as_of)] for d in drops],
        )
    stale = [[as_of, d.source_id, "source", d.source_id, DROP_STALE, d.detail(as_of)] for d in drops if d.stale(as_of)]
    if stale:
        con.executemany("INSERT INTO out_warnings VALUES (?, ?, ?, ?, ?, ?)", stale)
