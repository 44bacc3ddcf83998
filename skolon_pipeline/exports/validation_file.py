"""Validation files: per school authority (huvudman) and night, an Excel workbook for admins and CSV files for
machines.

`$SKOLON_EXPORT_DIR/<as-of>/<authority-slug>/valideringsfil_<authority-slug>_<as-of>.xlsx`, written for the
people who fix the registry: Swedish sheets and headers (Sammanfattning, Användare, Grupper, Medlemskap, Ej
synkade; `lang="en"` for English), roles, entity types and reasons in words with the codes and ids in the
last columns, one Ej synkade row per held-back person or group (the memberships held back only because of
them counted on it), long text wrapped, a Summary that starts with the authority, the night, each source's
drop date and when the file was made, and print setup (landscape, fitted to the page width, the header row
on every page; the Summary on one page). Beside it `summary.csv`, `users.csv`, ... (UTF-8, comma-separated,
ISO dates, English column codes, one row per exclusion) stay as they were. With `school`, one school unit
only, in `<authority-slug>/<school-slug>/`.

DuckDB builds every sheet's rows (sheets.sql for the CSV files and workbook.sql over them for the workbook,
over the night's published relations, read-only); this module only writes them: the workbook with
exports/xlsx.py (DuckDB generates each row's XML, streamed into the zip) and DuckDB's COPY for the CSV files.
Folders are 0700 and files 0600, and a file is replaced whole (written beside it, then renamed), so a reader
never sees half a workbook. Folder and file names come from registry data only as slugs ([a-z0-9-]) and are
checked to lie inside the export folder.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import duckdb

from skolon_pipeline.exports import xlsx
from skolon_pipeline.exports.cells import csv_safe_query
from skolon_pipeline.exports.explanations import EXPLANATIONS, explain
from skolon_pipeline.exports.people import show_night
from skolon_pipeline.exports.summary_sheet import Header, summary_layout
from skolon_pipeline.files import private_dir, safe_path, slug
from skolon_pipeline.publish import snapshot, warehouse

LANGUAGES = ("sv", "en")


def workbook_name(authority_slug: str, night: dt.date, school_slug: str | None = None) -> str:
    """'valideringsfil_lindby-kommun_2025-12-15.xlsx' (slugs only: registry data never names a file as it is)."""
    parts = [authority_slug, *([school_slug] if school_slug else []), night.isoformat()]
    if not all(re.fullmatch(r"[a-z0-9-]+", p) for p in parts):
        raise ExportError(f"not a safe file name part: {parts!r}")
    return f"valideringsfil_{'_'.join(parts)}.xlsx"


@dataclass(frozen=True)
class BookSheet:
    """One sheet of the workbook: its name and columns (view column, Swedish header, English header)."""

    csv_sheet: str  # the SHEETS entry (and CSV file) it shows
    names: tuple[str, str]
    view: str
    columns: tuple[tuple[str, str, str], ...]
    wrap: frozenset[str] = frozenset()

    def name(self, lang: str) -> str:
        return self.names[LANGUAGES.index(lang)]

    def headers(self, lang: str) -> tuple[str, ...]:
        return tuple(c[1 + LANGUAGES.index(lang)] for c in self.columns)


_SYNC_DATES = (
    ("first_synced", "Först synkad", "First synced"),
    ("last_changed_by_sync", "Senast ändrad av synken", "Last changed by sync"),
)
BOOK: tuple[BookSheet, ...] = (
    BookSheet(
        "Summary",
        ("Sammanfattning", "Summary"),
        "book_summary",
        (
            ("school", "Skola", "School"),
            ("school_unit_code", "Skolenhetskod", "School unit code"),
            ("students", "Elever", "Students"),
            ("teachers", "Lärare", "Teachers"),
            ("staff", "Personal", "Staff"),
            ("classes", "Klasser", "Classes"),
            ("teaching_groups", "Undervisningsgrupper", "Teaching groups"),
            ("memberships", "Gruppmedlemskap", "Group memberships"),
            ("excluded_persons", "Ej synkade personer", "Persons not synced"),
            ("excluded_groups", "Ej synkade grupper", "Groups not synced"),
            ("excluded_memberships", "Ej synkade gruppmedlemskap", "Group memberships not synced"),
            ("school_id", "Skolans id", "School id"),
        ),
    ),
    BookSheet(
        "Users",
        ("Användare", "Users"),
        "book_users",
        (
            ("given_name", "Förnamn", "Given name"),
            ("family_name", "Efternamn", "Family name"),
            ("username", "Användarnamn (e-post)", "Username (e-mail)"),
            ("role_word", "Roll", "Role"),
            ("schools", "Skolor", "Schools"),
            ("classes", "Klasser", "Classes"),
            ("groups", "Grupper", "Groups"),
            *_SYNC_DATES,
            ("role", "Rollkod", "Role code"),
            ("user_id", "Id", "Id"),
        ),
        frozenset({"groups"}),
    ),
    BookSheet(
        "Groups",
        ("Grupper", "Groups"),
        "book_groups",
        (
            ("name", "Namn", "Name"),
            ("school", "Skola", "School"),
            ("type", "Typ", "Type"),
            ("students", "Elever", "Students"),
            ("teachers", "Lärare", "Teachers"),
            ("start_date", "Startdatum", "Start date"),
            ("end_date", "Slutdatum", "End date"),
            *_SYNC_DATES,
            ("group_id", "Id", "Id"),
        ),
    ),
    BookSheet(
        "Memberships",
        ("Medlemskap", "Memberships"),
        "book_memberships",
        (
            ("group", "Grupp", "Group"),
            ("school", "Skola", "School"),
            ("name", "Namn", "Name"),
            ("username", "Användarnamn (e-post)", "Username (e-mail)"),
            ("role_word", "Roll", "Role"),
            ("start_date", "Startdatum", "Start date"),
            ("end_date", "Slutdatum", "End date"),
            ("role", "Rollkod", "Role code"),
            ("group_id", "Grupp-id", "Group id"),
            ("user_id", "Användar-id", "User id"),
        ),
    ),
    BookSheet(
        "Excluded",
        ("Ej synkade", "Not synced"),
        "book_excluded",
        (
            ("name", "Namn", "Name"),
            ("role_word", "Roll", "Role"),
            ("school", "Skola", "School"),
            ("explanation", "Vad är fel och vad ska göras", "What is wrong and what to do"),
            ("visible_from", "Visas från", "Visible from"),
            ("also_held", "Väntar också", "Also waiting"),
            ("entity", "Typ", "Type"),
            ("group", "Grupp", "Group"),
            ("detail", "Detalj från registret", "Detail from the registry"),
            ("email", "E-post", "E-mail"),
            ("reason_codes", "Orsakskod", "Reason code"),
            ("record_id", "Id", "Id"),
        ),
        frozenset({"explanation", "detail", "name"}),
    ),
)

# sheet name → (the table sheets.sql builds, the CSV file beside the workbook)
SHEETS: dict[str, tuple[str, str]] = {
    "Summary": ("sheet_summary", "summary.csv"),
    "Users": ("sheet_users", "users.csv"),
    "Groups": ("sheet_groups", "groups.csv"),
    "Memberships": ("sheet_memberships", "memberships.csv"),
    "Excluded": ("sheet_excluded", "excluded.csv"),
}
HIDDEN = ("_authority", "_schools")
POSITION = "_position"  # each book_* view's row in the sheet's order (workbook.sql), written to no cell
MAX_WIDTH = 60

# Summary columns with counts per school, in the Dagster metadata (no personal data).
COUNT_COLUMNS = (
    "students",
    "teachers",
    "staff",
    "classes",
    "teaching_groups",
    "memberships",
    "excluded_persons",
    "excluded_groups",
    "excluded_memberships",
)


class ExportError(ValueError):
    """The night is not published, or the school asked for does not exist; the message says which."""


@dataclass(frozen=True)
class Authority:
    id: str
    name: str
    slug: str


@dataclass
class ValidationFile:
    """One written validation file: where, for whom, and the counts (no personal data)."""

    authority: Authority
    folder: Path
    xlsx: Path
    csv: dict[str, Path]
    rows: dict[str, int]
    schools: list[dict] = field(default_factory=list)  # Summary rows: school name, code, id and counts


def prepare(con: duckdb.DuckDBPyConnection, as_of: dt.date, lang: str = "sv") -> None:
    """Builds every sheet's rows for night `as_of` as temp tables on `con` (read-only is enough), the
    workbook's in language `lang`."""
    if lang not in LANGUAGES:
        raise ExportError(f"language {lang!r}: use one of {', '.join(LANGUAGES)}")
    show_night(con, as_of)
    con.execute("SET VARIABLE lang = ?", [lang])
    con.execute("CREATE OR REPLACE TEMP TABLE x_explanations (code VARCHAR, problem VARCHAR, fix VARCHAR)")
    con.executemany(
        "INSERT INTO x_explanations VALUES (?, ?, ?)",
        [
            (code, *((e.problem_en, e.fix_en) if lang == "en" else (e.problem_sv, e.fix_sv)))
            for code, e in EXPLANATIONS.items()
        ],
    )
    try:
        con.create_function("explain_reason", explain, ["VARCHAR", "DATE"], "VARCHAR", null_handling="special")
    except duckdb.CatalogException:  # already registered on this connection
        pass
    con.execute(f"CREATE OR REPLACE TEMP TABLE school_counts AS {warehouse.sql_file('school_counts.sql')}")
    con.execute(resources.files("skolon_pipeline.exports").joinpath("sheets.sql").read_text(encoding="utf-8"))
    codes = list(EXPLANATIONS) + [
        c
        for (c,) in con.execute("SELECT DISTINCT reason_code FROM x_excluded_by_school ORDER BY 1").fetchall()
        if c not in EXPLANATIONS
    ]
    # Reason codes become column names: validated identifiers; the codes compared against are parameters.
    bad = [c for c in codes if not _REASON_CODE.fullmatch(c)]
    if bad:
        raise ValueError(f"reason codes that cannot be column names: {bad!r}")
    # Each held-back record once per reason, then counted per code (a count(DISTINCT) per code cost a hash
    # table per code over every exclusion: 3 s at 200 000 persons).
    per_code = ", ".join(f'count(record_id) FILTER (WHERE reason_code = ?) AS "{c}"' for c in codes)
    coalesced = ", ".join(f'coalesce(r."{c}", 0) AS "{c}"' for c in codes)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE sheet_summary AS
            SELECT b.*, {coalesced}
            FROM sheet_summary_base b
            LEFT JOIN (SELECT _authority, school_id, {per_code}
                       FROM (SELECT DISTINCT _authority, school_id, reason_code, record_id FROM x_excluded_by_school)
                       GROUP BY ALL) r
              ON r._authority = b._authority AND r.school_id IS NOT DISTINCT FROM b.school_id
            ORDER BY b.school_id IS NULL, b.school, b.school_id""",
        codes,
    )
    con.execute(resources.files("skolon_pipeline.exports").joinpath("workbook.sql").read_text(encoding="utf-8"))


_REASON_CODE = re.compile(r"[A-Z][A-Z0-9_]*")


def authorities(con: duckdb.DuckDBPyConnection) -> list[Authority]:
    """The night's school authorities with unique folder names (a clash of names gets the id's start)."""
    rows = con.execute("SELECT authority_id, authority_name FROM x_authorities ORDER BY authority_id").fetchall()
    slugs = [slug(name) for _, name in rows]
    return [
        Authority(aid, name, s if slugs.count(s) == 1 else slug(f"{s}-{slug(aid)[:8]}"))
        for (aid, name), s in zip(rows, slugs, strict=True)
    ]


def find_school(con: duckdb.DuckDBPyConnection, school: str) -> tuple[str, str, str]:
    """(school_id, authority_id, folder name) of a school unit code or school id on the prepared night."""
    rows = con.execute(
        """SELECT school_id, authority_id, name, school_unit_code FROM x_schools
           WHERE school_unit_code = $q OR school_id = lower($q) ORDER BY school_id""",
        {"q": school.strip()},
    ).fetchall()
    if not rows:
        raise ExportError(f"no school unit with code or id {school!r} on this night")
    if len(rows) > 1:
        raise ExportError(f"{school!r} names {len(rows)} schools; give the school id instead")
    school_id, authority_id, name, code = rows[0]
    # Name and code are registry data: a slug, so a code like '../../x' is only ever a folder name.
    return school_id, authority_id, slug(f"{name or ''}-{code or school_id[:8]}")


def _filter(con: duckdb.DuckDBPyConnection, authority_id: str, school_id: str | None) -> None:
    # Variables, not a one-row table: a sheet's filter stays a plain filter on the scan, which keeps the sheet's
    # order (a comparison with a subquery became a join that DuckDB may run with the sheet as its build side,
    # and the rows came out of its hash table unordered).
    con.execute("SET VARIABLE x_authority = ?", [authority_id])
    con.execute("SET VARIABLE x_school = ?::VARCHAR", [school_id])


def _sheet_query(table: str, columns: tuple[str, ...] | None = None) -> str:
    select = ", ".join(f'"{c}"' for c in columns) if columns else f"* EXCLUDE ({', '.join(HIDDEN)})"
    return f"""SELECT {select} FROM {table}
               WHERE _authority = getvariable('x_authority')
                 AND (getvariable('x_school') IS NULL OR list_contains(_schools, getvariable('x_school')))"""


def _replace(tmp: Path, final: Path) -> None:
    os.chmod(tmp, 0o600)
    os.replace(tmp, final)


def _write_workbook(
    con: duckdb.DuckDBPyConnection, path: Path, header: Header, lang: str, max_rows: int = xlsx.MAX_ROWS
) -> dict[str, int]:
    """Writes every sheet; a sheet longer than Excel allows continues on "<name> (2)", ... Returns the data rows
    of each sheet, by its SHEETS name."""
    sheets = []
    for book in BOOK:
        layout = xlsx.Layout(headers=book.headers(lang), wrap=book.wrap)
        if book.csv_sheet == "Summary":
            layout = summary_layout(con, header, lang, layout)
        query = _sheet_query(book.view, (*(c[0] for c in book.columns), POSITION))
        sheets.append(xlsx.Sheet(book.name(lang), query, layout=layout, position=POSITION))
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        rows = xlsx.write_workbook(con, tmp, sheets, max_width=MAX_WIDTH, max_rows=max_rows)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write (disk full) leaves the previous file, not half a new one
        raise
    _replace(tmp, path)
    return {book.csv_sheet: rows[book.name(lang)] for book in BOOK}


def _write_csv(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        con.execute(
            f"COPY ({csv_safe_query(con, _sheet_query(table))}) TO ? "
            "(FORMAT csv, HEADER, DELIMITER ',', DATEFORMAT '%Y-%m-%d')",
            [str(tmp)],
        )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace(tmp, path)


def workbook(
    con: duckdb.DuckDBPyConnection,
    authority: Authority,
    night: dt.date,
    folder: Path,
    lang: str = "sv",
    school: tuple[str, str, str] | None = None,
    max_rows: int = xlsx.MAX_ROWS,
) -> tuple[Path, dict[str, int]]:
    """Writes the workbook of `authority` (of one school unit with `school`: its id, slug and name) on the
    prepared night into `folder` as `valideringsfil_<authority>[_<school>]_<night>.xlsx`; returns its path
    and the data rows of each sheet (by its SHEETS name). The export and the School Admin's download both
    write it here."""
    school_id, school_slug, school_name = school or (None, None, None)
    _filter(con, authority.id, school_id)
    path = folder / workbook_name(authority.slug, night, school_slug)
    header = Header(authority.name, authority.id, night, school_name, dt.datetime.now().astimezone())
    return path, _write_workbook(con, path, header, lang, max_rows)


def _write_one(
    con,
    authority: Authority,
    folder: Path,
    night: dt.date,
    school: tuple[str, str, str] | None,
    lang: str,
    max_rows: int = xlsx.MAX_ROWS,
) -> ValidationFile:
    private_dir(folder, owned=False)
    xlsx_path, rows = workbook(con, authority, night, folder, lang, school, max_rows)
    csv = {}
    for sheet, (table, name) in SHEETS.items():
        csv[sheet] = folder / name
        _write_csv(con, table, csv[sheet])
    summary = con.execute(
        f"SELECT school, school_unit_code, school_id, {', '.join(COUNT_COLUMNS)} FROM ({_sheet_query('sheet_summary')})"
    ).fetchall()
    schools = [dict(zip(("school", "school_unit_code", "school_id", *COUNT_COLUMNS), r, strict=True)) for r in summary]
    return ValidationFile(authority, folder, xlsx_path, csv, rows, schools)


def resolve_night(con: duckdb.DuckDBPyConnection, as_of: dt.date | None) -> dt.date:
    nights = warehouse.published_nights(con)
    if not nights:
        raise ExportError("the warehouse has no published night yet: run `skolon-pipeline run` first")
    if as_of is None:
        return nights[-1]
    if as_of not in nights:
        raise ExportError(f"night {as_of} is not published (published: {nights[0]} … {nights[-1]})")
    return as_of


def write_validation_files(
    warehouse_path: Path,
    export_dir: Path,
    as_of: dt.date | None = None,
    school: str | None = None,
    max_sheet_rows: int = xlsx.MAX_ROWS,
    lang: str = "sv",
) -> tuple[dt.date, list[ValidationFile]]:
    """Writes the night's validation file of every school authority (or of the one school unit `school`, by
    school unit code or id), the workbook in language `lang` (sv, en). Reads the warehouse read-only.
    Returns the night and what was written."""
    if not Path(warehouse_path).exists():
        raise ExportError(f"no warehouse at {warehouse_path}: run `skolon-pipeline run` first")
    with snapshot.connect_published(warehouse_path) as con:
        night = resolve_night(con, as_of)
        prepare(con, night, lang)
        by_id = {a.id: a for a in authorities(con)}
        # Folders the export creates are 0700; folders that exist already (the export folder itself, say) keep
        # their mode. Every name below the night's folder comes from registry data: slugs, checked to stay in it.
        export_dir = Path(export_dir)
        private_dir(export_dir / night.isoformat(), owned=False)
        if school is not None:
            school_id, authority_id, school_slug = find_school(con, school)
            authority = by_id[authority_id]
            folder = safe_path(export_dir, night.isoformat(), authority.slug, school_slug)
            name = con.execute("SELECT name FROM x_schools WHERE school_id = ?", [school_id]).fetchone()[0]
            return night, [
                _write_one(con, authority, folder, night, (school_id, school_slug, name), lang, max_sheet_rows)
            ]
        return night, [
            _write_one(con, a, safe_path(export_dir, night.isoformat(), a.slug), night, None, lang, max_sheet_rows)
            for a in by_id.values()
        ]
