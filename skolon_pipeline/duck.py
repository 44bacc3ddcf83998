"""Small DuckDB helpers shared by the stages."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import duckdb

MEMORY_LIMIT_ENV = "SKOLON_DUCKDB_MEMORY_LIMIT"
# Per connection; the stages run one after another, so this bounds a night's memory whatever the drop's size:
# beyond it DuckDB spills joins, sorts and temporary tables to `<database>.tmp/` (beside the file, so in the
# same owner-only folder). DuckDB's own default is 80 % of the machine's RAM.
DEFAULT_MEMORY_LIMIT = "3GB"


def connect(path: Path | str | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the installation's memory limit (`SKOLON_DUCKDB_MEMORY_LIMIT`, e.g. `2GB`)."""
    config = {"memory_limit": os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT}
    return duckdb.connect(":memory:" if path is None else str(path), read_only=read_only, config=config)


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None):
    """The single value of a query; the result is consumed whole, so the connection is free afterwards."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def row_counts(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> dict[str, int]:
    return {t: scalar(con, f"SELECT count(*) FROM {t}") for t in tables}
