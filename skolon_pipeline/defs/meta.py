"""What a Dagster user expects on every asset: who owns it (`owners`), whether it holds personal data (the
`pii` tag, for catalog filters and access reviews), and a `code_version` that changes when the SQL computing
it changes (the UI then marks what a new release would compute differently)."""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
OWNERS = ["team:skolon-sync"]
PII_TAG = "pii"
PII = {PII_TAG: "true"}
# Published tables that name or place persons (ids, names, addresses, memberships); schools and groups do not.
PII_TABLES = frozenset({"users", "school_affiliations", "memberships", "exclusions", "warnings", "excluded_persons"})


def sql_version(*files: str) -> str:
    """A hash of the package's SQL files (paths inside `skolon_pipeline/`), in the order given."""
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + (PACKAGE / name).read_bytes())
    return digest.hexdigest()[:16]


RULES_SQL = ("rules/roster.sql", "rules/school_counts.sql")
EXPORTS_SQL = ("exports/people.sql", "exports/sheets.sql", "exports/workbook.sql")


def reader_sql(source_format: str) -> tuple[str, ...]:
    return (f"sources/{source_format}.sql", "sources/civic.sql")
