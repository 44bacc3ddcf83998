"""The canonical staging tables every reader produces, and their Pandera models.

One place for the tables' columns and checks. Validation is lazy: every failing row of every table is
collected, and each becomes an `INVALID_RECORD` exclusion of the record that owns it (a bad enrolment date
excludes the person; a bad membership date excludes the membership), so the run goes on and an admin sees
every problem at once. Failures are described by table, field and check; values are repeated only for fields
that carry no personal data (dates, codes).
"""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

from skolon_pipeline.bounds import CONTROL_CHARACTERS, MAX_VALUE, OVERSIZED, OVERSIZED_HEAD, shorten
from skolon_pipeline.duck import scalar
from skolon_pipeline.sources.enums import PERSON_STATUSES

# Tables the rules read, in the order they are validated.
CANONICAL_TABLES = (
    "organisations",
    "persons",
    "person_emails",
    "enrolments",
    "duties",
    "groups",
    "group_memberships",
    "teacher_assignments",
    "responsibles",
    "group_terms",
)

# A name longer than this is not a name but a broken or hostile export.
MAX_TEXT = 256

# Every text column as pandas' Arrow-backed string dtype: DuckDB hands its rows over as Arrow (no Python object
# per value) and Pandera's string checks run as Arrow compute kernels. Profiled at 200 000 persons: converting
# DuckDB's rows to Python-backed strings was 1.1 of the 1.9 s validation took.
Text = Annotated[pd.StringDtype, "pyarrow", pd.NA]
_ARROW_TEXT = pd.StringDtype("pyarrow")
_AS_PANDAS = {pyarrow.string(): _ARROW_TEXT, pyarrow.large_string(): _ARROW_TEXT, pyarrow.string_view(): _ARROW_TEXT}


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _is_calendar_date(text: str) -> bool:
    try:
        return bool(_ISO_DATE.fullmatch(text)) and dt.date.fromisoformat(text) is not None
    except ValueError:
        return False


def _calendar_dates(series: pd.Series) -> pd.Series:
    """True where the text is a real calendar date YYYY-MM-DD, any year from 0001 to 9999 (9999-12-31 is how
    registries write an open end). Checked as dates, not as pandas timestamps, which end in the year 2262; each
    distinct text once (a drop holds few distinct dates)."""
    valid = [text for text in series.dropna().unique() if _is_calendar_date(text)]
    return series.isin(valid).fillna(False).astype(bool)


def _iso_date(series: pd.Series) -> pd.Series:
    return (series.isna() | _calendar_dates(series)).astype(bool)


def _no_control_characters(series: pd.Series) -> pd.Series:
    """Ids and names carry no control characters: a newline or NUL in a name breaks files and log lines, a C1
    control (U+009B) is a terminal escape, a bidirectional override (U+202E) shows a name reversed."""
    return (series.isna() | ~series.str.contains(CONTROL_CHARACTERS, regex=True)).fillna(True).astype(bool)


def _end_not_before_start(df: pd.DataFrame) -> pd.Series:
    # Compare only where both dates are valid; a malformed date is the iso_date check's to report. Valid
    # YYYY-MM-DD texts order as the dates do.
    start, end = df["start_date"], df["end_date"]
    both = _calendar_dates(start) & _calendar_dates(end)
    return (~both | (end >= start)).fillna(True).astype(bool)


class _Dated(pa.DataFrameModel):
    start_date: Series[Text] = pa.Field(nullable=True)
    end_date: Series[Text] = pa.Field(nullable=True)

    @pa.check("start_date", "end_date", name="iso_date", element_wise=False)
    def iso_date(cls, series: Series[Text]) -> Series[bool]:
        return _iso_date(series)

    @pa.dataframe_check(name="end_not_before_start")
    def end_not_before_start(cls, df: pd.DataFrame) -> Series[bool]:
        return _end_not_before_start(df)

    class Config:
        strict = False  # source readers may add columns (file, idx, ordinal, origin ...)


class Organisations(_Dated):
    org_id: Series[Text] = pa.Field(nullable=False)
    name: Series[Text] = pa.Field(nullable=True, str_length={"max_value": MAX_TEXT})
    org_type: Series[Text] = pa.Field(nullable=False)

    @pa.check("org_id", "name", name="no_control_characters", element_wise=False)
    def no_control_characters(cls, series: Series[Text]) -> Series[bool]:
        return _no_control_characters(series)


class Persons(pa.DataFrameModel):
    person_id: Series[Text] = pa.Field(nullable=False, str_length={"max_value": MAX_TEXT})
    given_name: Series[Text] = pa.Field(nullable=True, str_length={"max_value": MAX_TEXT})
    family_name: Series[Text] = pa.Field(nullable=True, str_length={"max_value": MAX_TEXT})
    person_status: Series[Text] = pa.Field(nullable=True, isin=list(PERSON_STATUSES))
    # HMAC-SHA256 hex of the civic number (skolon_pipeline.sources.civic), never the number itself
    civic_no_hash: Series[Text] = pa.Field(nullable=True, str_matches=r"^[0-9a-f]{64}$")

    @pa.check("person_id", "given_name", "family_name", name="no_control_characters", element_wise=False)
    def no_control_characters(cls, series: Series[Text]) -> Series[bool]:
        return _no_control_characters(series)

    class Config:
        strict = False


class PersonEmails(pa.DataFrameModel):
    person_id: Series[Text] = pa.Field(nullable=False)
    email: Series[Text] = pa.Field(nullable=False, str_length={"max_value": MAX_TEXT})

    @pa.check("email", name="no_control_characters", element_wise=False)
    def no_control_characters(cls, series: Series[Text]) -> Series[bool]:
        return _no_control_characters(series)

    class Config:
        strict = False


class Enrolments(_Dated):
    person_id: Series[Text] = pa.Field(nullable=False)
    school_id: Series[Text] = pa.Field(nullable=False)
    cancelled: Series[Text] = pa.Field(nullable=True, isin=["true", "false"])


class Duties(_Dated):
    duty_id: Series[Text] = pa.Field(nullable=False)
    person_id: Series[Text] = pa.Field(nullable=False)
    school_id: Series[Text] = pa.Field(nullable=False)
    duty_role: Series[Text] = pa.Field(nullable=False)


class Groups(_Dated):
    group_id: Series[Text] = pa.Field(nullable=False, str_length={"max_value": MAX_TEXT})
    name: Series[Text] = pa.Field(nullable=True, str_length={"max_value": MAX_TEXT})
    group_type: Series[Text] = pa.Field(nullable=False)
    school_id: Series[Text] = pa.Field(nullable=False)

    @pa.check("group_id", "name", name="no_control_characters", element_wise=False)
    def no_control_characters(cls, series: Series[Text]) -> Series[bool]:
        return _no_control_characters(series)


class GroupMemberships(_Dated):
    group_id: Series[Text] = pa.Field(nullable=False)
    person_id: Series[Text] = pa.Field(nullable=False)


class TeacherAssignments(_Dated):
    group_id: Series[Text] = pa.Field(nullable=False)
    person_id: Series[Text] = pa.Field(nullable=True)  # null: the duty it names is not in the drop (UNKNOWN_PERSON)


class GroupTerms(_Dated):
    """OneRoster: the terms (academic sessions) of a class; the class is active when one of them is."""

    group_id: Series[Text] = pa.Field(nullable=False)


class Responsibles(pa.DataFrameModel):
    person_id: Series[Text] = pa.Field(nullable=True)  # null: a protected person's link is not stored
    responsible_id: Series[Text] = pa.Field(nullable=False)

    class Config:
        strict = False


@dataclass(frozen=True)
class Owner:
    """Which record a failing row is reported on (CONTRACT §4: nested problems go to the owning entity)."""

    entity_type: str  # person | group | membership | <other>: other owners become warnings, not exclusions
    id_columns: tuple[str, ...]
    role: str | None = None


MODELS: dict[str, tuple[type[pa.DataFrameModel], Owner]] = {
    "organisations": (Organisations, Owner("organisation", ("org_id",))),
    "persons": (Persons, Owner("person", ("person_id",))),
    "person_emails": (PersonEmails, Owner("person", ("person_id",))),
    "enrolments": (Enrolments, Owner("person", ("person_id",))),
    "duties": (Duties, Owner("person", ("person_id",))),
    "groups": (Groups, Owner("group", ("group_id",))),
    "group_memberships": (GroupMemberships, Owner("membership", ("group_id", "person_id"), role="student")),
    "teacher_assignments": (TeacherAssignments, Owner("membership", ("group_id", "person_id"), role="teacher")),
    "responsibles": (Responsibles, Owner("person", ("person_id",))),
    "group_terms": (GroupTerms, Owner("group", ("group_id",))),
}

# Columns a reader may leave out (a format without civic numbers or e-mail types): added empty before validation.
OPTIONAL_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    # SS12000: the school types of a unit and of a group decide which unit below a Skola a group counts at
    "organisations": (("school_types", "VARCHAR[]"),),
    "persons": (
        ("civic_no_hash", "VARCHAR"),
        ("private_emails", "INTEGER"),
        # OneRoster: enabledUser=false (PERSON_INACTIVE) and status=tobedeleted (TO_BE_DELETED)
        ("inactive_reason", "VARCHAR"),
        ("to_be_deleted", "BOOLEAN"),
    ),
    "groups": (("to_be_deleted", "BOOLEAN"), ("school_type", "VARCHAR")),
    "group_memberships": (("to_be_deleted", "BOOLEAN"),),
    "teacher_assignments": (("to_be_deleted", "BOOLEAN"), ("origin_ordinal", "BIGINT")),
}

# Tables a reader may leave out (OneRoster's class terms), created empty before validation.
OPTIONAL_TABLES = {
    "group_terms": "source_id VARCHAR, group_id VARCHAR, session_id VARCHAR, start_date VARCHAR, end_date VARCHAR",
    # SS12000's sources of teacher assignments, for the conservation check (every entry is an assignment or has
    # a warning); a OneRoster source has none.
    "activities": "source_id VARCHAR, activity_id VARCHAR",
    "activity_teachers": "source_id VARCHAR, activity_id VARCHAR, ordinal BIGINT, duty_id VARCHAR, person_id VARCHAR",
    "duty_assignment_roles": "source_id VARCHAR, duty_id VARCHAR, ordinal BIGINT, group_id VARCHAR",
}

# Fields whose failing value may be shown to admins: dates and codes, never names or addresses.
_SHOW_VALUE = {
    "start_date",
    "end_date",
    "cancelled",
    "person_status",
    "org_type",
    "group_type",
    "duty_role",
    # OneRoster code lists (sources/oneroster.py)
    "status",
    "role",
    "type",
    "class_type",
    "role_type",
    "enabled_user",
}

INVALID_RECORDS_DDL = """
CREATE OR REPLACE TABLE invalid_records (
    source_id VARCHAR, table_name VARCHAR, entity_type VARCHAR, record_id VARCHAR,
    person_id VARCHAR, group_id VARCHAR, role VARCHAR, field VARCHAR, check_name VARCHAR, detail VARCHAR)
"""


@dataclass
class TableReport:
    table: str
    rows: int
    failures: int
    # ids, field and check names only: this goes to Dagster metadata
    failure_cases: list[dict] = field(default_factory=list)


def _check_name(raw: str) -> str:
    # Pandera spells built-in checks like "isin(['Aktiv', ...])" or "str_length(None, 256)"; keep the name.
    return str(raw).split("(")[0]


def _fallback_id(row: pd.Series, owner: Owner) -> str | None:
    """The failing row's own record id when it has no owner (a duty without a person, say)."""
    for column in ("duty_id", "org_id", "group_id", "person_id"):
        if column in row and isinstance(row[column], str):
            return row[column]
    return None


def failure_rows(table: str, df: pd.DataFrame, failure_cases: pd.DataFrame, owner: Owner, source_id: str):
    cases = failure_cases.dropna(subset=["index"]).copy()
    cases["index"] = cases["index"].astype(int)
    # A dataframe-level check lists every column of a failing row: keep one line per row and check.
    cases["field"] = cases.apply(
        lambda c: "start_date/end_date" if c["check"] == "end_not_before_start" else c["column"], axis=1
    )
    cases = cases.drop_duplicates(subset=["index", "check", "field"])
    for case in cases.itertuples(index=False):
        row = df.loc[case.index]
        ids = [row[c] if isinstance(row[c], str) else None for c in owner.id_columns]
        check = _check_name(case.check)
        # A value shown is cut short: a 20 MB "date" is reported in a line, never stored whole.
        value = (
            f" ({shorten(repr(case.failure_case), 60)})"
            if case.field in _SHOW_VALUE and case.field in df.columns
            else ""
        )
        detail = f"{table}.{case.field} failed {check}{value}"
        if "ordinal" in df.columns:
            detail = f"{table}[{int(row['ordinal'])}].{case.field} failed {check}{value}"
        record_id = "/".join(i for i in ids if i) if all(ids) else None
        if owner.entity_type == "membership" and ids[0] and not ids[1]:
            record_id = None
        yield {
            "source_id": source_id,
            "table_name": table,
            "entity_type": owner.entity_type if record_id else table,
            "record_id": record_id or _fallback_id(row, owner),
            "person_id": row.get("person_id") if isinstance(row.get("person_id"), str) else None,
            "group_id": row.get("group_id") if isinstance(row.get("group_id"), str) else None,
            "role": owner.role,
            "field": case.field,
            "check_name": check,
            "detail": detail,
        }


# Bookkeeping columns the checks never read: left in DuckDB to keep the chunks small.
_NOT_VALIDATED = ("source_id", "file", "idx", "duplicate_contents")

# Rows per validated chunk (a multiple of DuckDB's 2048-row vector): bounds memory whatever the drop's size.
CHUNK_VECTORS = 128

# Tables validated at once (validate_staging).
VALIDATION_THREADS = 2


def _chunks(con: duckdb.DuckDBPyConnection, table: str):
    """The table as pandas frames of at most CHUNK_VECTORS * 2048 rows, read from DuckDB as Arrow record batches,
    text columns as Arrow-backed strings (`Text`: each a view of the batch, checked by Arrow's kernels)."""
    columns = [
        c
        for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' ORDER BY column_index",
            [table],
        ).fetchall()
        if c not in _NOT_VALIDATED
    ]
    for batch in con.sql(f"SELECT {', '.join(columns)} FROM {table}").to_arrow_reader(CHUNK_VECTORS * 2048):
        yield batch.to_pandas(types_mapper=_AS_PANDAS.get)


def _validate_table(con: duckdb.DuckDBPyConnection, table: str, source_id: str) -> tuple[int, list[dict]]:
    model, owner = MODELS[table]
    total, rows = 0, []
    for chunk in _chunks(con, table):
        total += len(chunk)
        try:
            model.validate(chunk, lazy=True)
        except pa.errors.SchemaErrors as exc:
            rows.extend(failure_rows(table, chunk, exc.failure_cases, owner, source_id))
    if total == 0:  # still check the (empty) table's columns
        empty = con.sql(f"SELECT * FROM {table} LIMIT 0").to_arrow_table().to_pandas(types_mapper=_AS_PANDAS.get)
        model.validate(empty, lazy=True)
    return total, rows


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _oversized_values(con: duckdb.DuckDBPyConnection, table: str, source_id: str) -> None:
    """A value above MAX_VALUE characters (or one a reader already replaced by OVERSIZED) makes the record that
    owns it an INVALID_RECORD, and is cut to its first OVERSIZED_HEAD characters before anything else reads it:
    a 50 MB name costs one line in the report, not the source."""
    _, owner = MODELS[table]
    columns = [
        c
        for (c,) in con.execute(
            """SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main'
           AND data_type = 'VARCHAR' ORDER BY column_index""",
            [table],
        ).fetchall()
        if c not in _NOT_VALIDATED
    ]
    over = {c: f"(starts_with({_quoted(c)}, $mark) OR length({_quoted(c)}) > $max)" for c in columns}
    if not over or not scalar(
        con, f"SELECT count(*) FROM {table} WHERE {' OR '.join(over.values())}", {"mark": OVERSIZED, "max": MAX_VALUE}
    ):
        return
    has_ordinal = scalar(
        con, "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = 'ordinal'", [table]
    )
    ids = [f"CASE WHEN {over[c]} THEN NULL ELSE {_quoted(c)} END" if c in over else "NULL" for c in owner.id_columns]
    record_id = f"CASE WHEN {' AND '.join(f'{i} IS NOT NULL' for i in ids)} THEN concat_ws('/', {', '.join(ids)}) END"
    where = f"{table}[' || ordinal || ']" if has_ordinal else table
    for column, condition in over.items():
        q = _quoted(column)
        digits = f"split_part(substr({q}, length($mark) + 1), ':', 1)"
        chars = f"CASE WHEN starts_with({q}, $mark) THEN TRY_CAST({digits} AS BIGINT) ELSE length({q}) END"
        # The value keeps only its first characters: its other checks still run on them (a "date" is still
        # not a date), but nothing says a name is blank when it was too long.
        head = f"CASE WHEN starts_with({q}, $mark) THEN substr({q}, length($mark) + length({digits}) + 2) ELSE left({q}, $head) END"
        person = "person_id" if "person_id" in columns and column != "person_id" else "NULL"
        group = "group_id" if "group_id" in columns and column != "group_id" else "NULL"
        con.execute(
            f"""INSERT INTO invalid_records
                SELECT $source, $table, CASE WHEN rid IS NULL THEN $table ELSE $entity END, rid, person, grp, $role,
                       $column, 'max_size', detail
                FROM (SELECT {record_id} AS rid, {person} AS person, {group} AS grp,
                             '{where}.' || $column || ' failed max_size (' || {chars} || ' characters; at most '
                             || $max || ')' AS detail
                      FROM {table} WHERE {condition})""",
            {
                "source": source_id,
                "table": table,
                "entity": owner.entity_type,
                "role": owner.role,
                "column": column,
                "mark": OVERSIZED,
                "max": MAX_VALUE,
            },
        )
        con.execute(
            f"UPDATE {table} SET {q} = {head} WHERE {condition}",
            {"mark": OVERSIZED, "max": MAX_VALUE, "head": OVERSIZED_HEAD},
        )


def complete_staging(con: duckdb.DuckDBPyConnection) -> None:
    """Adds the optional tables and columns a reader left out, empty, so every source has every canonical
    column (the rules union the sources by name)."""
    for table, columns_ddl in OPTIONAL_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns_ddl})")
    for table, columns in OPTIONAL_COLUMNS.items():
        for column, sql_type in columns:
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {sql_type}")


def validate_staging(con: duckdb.DuckDBPyConnection, source_id: str) -> list[TableReport]:
    """Validates every canonical table in a source's staging database; writes `invalid_records` there."""
    con.execute(INVALID_RECORDS_DDL)
    complete_staging(con)
    # Record checks a reader ran on its own files (OneRoster code lists) come first.
    if scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'reader_invalid_records'"):
        con.execute("INSERT INTO invalid_records SELECT * FROM reader_invalid_records")
    for table in CANONICAL_TABLES:
        _oversized_values(con, table, source_id)  # first: it cuts the values Pandera then checks
    # Two tables at a time, each on a cursor of its own: Pandera's checks are Python, but the Arrow reads and
    # pandas' vectorised steps let go of the GIL, so a second table's run in the gaps. Largest first, so that
    # the long one does not start last. Their failures are written below in CANONICAL_TABLES order, as before.
    order = sorted(CANONICAL_TABLES, key=lambda t: -scalar(con, f"SELECT count(*) FROM {t}"))
    with ThreadPoolExecutor(max_workers=VALIDATION_THREADS) as pool:
        results = dict(zip(order, pool.map(lambda t: _validate_on_cursor(con, t, source_id), order), strict=True))
    reports = []
    for table in CANONICAL_TABLES:
        total, rows = results[table]
        if rows:
            frame = pd.DataFrame(rows)
            con.register("_invalid_rows", frame)
            con.execute(
                "INSERT INTO invalid_records SELECT source_id, table_name, entity_type, record_id, person_id, "
                "group_id, role, field, check_name, detail FROM _invalid_rows"
            )
            con.unregister("_invalid_rows")
        reports.append(
            TableReport(
                table=table,
                rows=total,
                failures=len(rows),
                failure_cases=[
                    {"record_id": r["record_id"], "field": r["field"], "check": r["check_name"]} for r in rows[:50]
                ],
            )
        )
    return reports


def _validate_on_cursor(con: duckdb.DuckDBPyConnection, table: str, source_id: str) -> tuple[int, list[dict]]:
    with con.cursor() as cursor:
        return _validate_table(cursor, table, source_id)
