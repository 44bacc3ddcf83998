"""Who the exports and `explain` may show, and how: people.sql's views over one published night.

`show_night(con, night)` makes the night's relations (warehouse.use_night) and the views `shown_people` and
`shown_exclusions`, in which protected identities are masked once for every reader (the validation file's
sheets, `explain`, the School Admin view). Works on a read-only connection.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources

import duckdb

from skolon_pipeline.exports.explanations import MASK
from skolon_pipeline.publish import warehouse


def show_night(con: duckdb.DuckDBPyConnection, night: dt.date) -> None:
    warehouse.use_night(con, night)
    show_people(con)


def show_people(con: duckdb.DuckDBPyConnection) -> None:
    """people.sql's views over the night's relations that `con` already has by plain name (the School Admin's
    scoped copy has them as tables)."""
    con.execute("SET VARIABLE mask = ?", [MASK])
    con.execute(resources.files("skolon_pipeline.exports").joinpath("people.sql").read_text(encoding="utf-8"))
