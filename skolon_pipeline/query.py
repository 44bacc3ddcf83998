"""`skolon-pipeline sql [QUERY]`: the warehouse for people without the DuckDB CLI.

With a query, it runs it on the published warehouse and prints the result as a table (or `--csv`); without one
it opens a prompt that reads statements ending in `;` until `.quit` or end of input. Read-only in every sense:
the warehouse is attached read-only through `snapshot.connect_published` (a run may replace it meanwhile: the
session keeps reading the night it opened), and DuckDB's external access is switched off and locked, so a
statement can neither write a file (`COPY ... TO`), attach another database nor install an extension. Every
value is printed through `text.printable`: a name with terminal escapes shows them escaped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

import duckdb

from skolon_pipeline import text
from skolon_pipeline.publish import snapshot

TABLE_ROWS = 1000  # rows a table shows; --csv prints every row
MAX_CELL = 60  # characters a table cell shows (--csv shows the whole value)
PROMPT, CONTINUATION = "sql> ", "...> "
HELP = """Statements end with `;`. `.tables` lists the tables, `.quit` (or Ctrl-D) ends.
Start with: SELECT * FROM roster.users LIMIT 10;   (docs/analysts.md has more)"""
DOT_COMMANDS = {
    ".tables": "SELECT schema_name || '.' || table_name AS name, 'table' AS kind FROM duckdb_tables() "
    "WHERE database_name = current_database() UNION ALL "
    "SELECT schema_name || '.' || view_name, 'view' FROM duckdb_views() "
    "WHERE database_name = current_database() AND NOT internal ORDER BY 1"
}


class QueryError(Exception):
    """A statement DuckDB refused (a syntax error, a write to the read-only warehouse, a file access)."""


def connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """The published warehouse, read-only; no file outside it can be read or written from this connection."""
    con = snapshot.connect_published(warehouse)
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run(con: duckdb.DuckDBPyConnection, statement: str) -> tuple[list[str], Iterator[tuple]]:
    """Column names and rows of the statement's result (the last one, for several statements)."""
    try:
        cursor = con.execute(statement)
    except duckdb.Error as exc:
        raise QueryError(text.one_line(exc)) from None
    if cursor.description is None:
        return [], iter(())
    columns = [d[0] for d in cursor.description]

    def rows() -> Iterator[tuple]:
        while batch := cursor.fetchmany(10_000):
            yield from batch

    return columns, rows()


def _cell(value: object, limit: int | None) -> str:
    shown = "NULL" if value is None else text.printable(value)
    return shown if limit is None or len(shown) <= limit else shown[: limit - 1] + "…"


def print_table(columns: list[str], rows: Iterable[tuple], out: TextIO, limit: int = TABLE_ROWS) -> None:
    """An aligned text table of the first `limit` rows, then how many were left out."""
    if not columns:
        print("OK", file=out)
        return
    shown, more = [], 0
    for row in rows:
        if len(shown) < limit:
            shown.append([_cell(v, MAX_CELL) for v in row])
        else:
            more += 1
    header = [_cell(c, MAX_CELL) for c in columns]
    widths = [max([len(header[i]), *(len(r[i]) for r in shown)]) for i in range(len(columns))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)), file=out)
    print("-+-".join("-" * w for w in widths), file=out)
    for r in shown:
        print(" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)), file=out)
    total = len(shown) + more
    print(
        f"({total} row{'s' if total != 1 else ''}" + (f"; {more} not shown: --csv prints every row)" if more else ")"),
        file=out,
    )


def print_csv(columns: list[str], rows: Iterable[tuple], out: TextIO) -> None:
    writer = csv.writer(out)
    if columns:
        writer.writerow([_cell(c, None) for c in columns])
    for row in rows:
        writer.writerow(["" if v is None else _cell(v, None) for v in row])


def banner(con: duckdb.DuckDBPyConnection, warehouse: Path) -> str:
    """Which file and night the prompt reads."""
    try:
        night = con.execute("SELECT max(as_of) FROM nightly.nights").fetchone()[0]
    except duckdb.Error:
        night = None
    return f"{text.printable(warehouse)} (read-only; latest published night: {night or 'none'})"


def prompt(con: duckdb.DuckDBPyConnection, stdin: TextIO, out: TextIO, err: TextIO, title: str = "") -> int:
    """Reads statements until `.quit` or the end of input; a refused statement is reported and the prompt goes on.
    Returns 1 when the last statement failed (for scripts piping statements in), else 0."""
    interactive = stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:
            pass
        print("\n".join(filter(None, [title, HELP])), file=out)
    status, buffer = 0, []
    while True:
        if interactive:
            try:
                line = input(CONTINUATION if buffer else PROMPT)
            except EOFError:
                print(file=out)
                break
        else:
            line = stdin.readline()
            if not line:
                break
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            if stripped in (".quit", ".exit"):
                break
            if stripped == ".help":
                print(HELP, file=out)
                continue
            statement = DOT_COMMANDS.get(stripped.split()[0])
            if statement is None:
                print(f"error: unknown command {text.printable(stripped)} (.help lists them)", file=err)
                status = 1
                continue
        else:
            buffer.append(line)
            if not stripped.endswith(";"):
                continue
            statement, buffer = "\n".join(buffer), []
        try:
            print_table(*run(con, statement), out)
            status = 0
        except QueryError as exc:
            print(f"error: {exc}", file=err)
            status = 1
    if buffer and "".join(buffer).strip():
        try:
            print_table(*run(con, "\n".join(buffer)), out)
        except QueryError as exc:
            print(f"error: {exc}", file=err)
            status = 1
    return status
