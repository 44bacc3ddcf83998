"""The workbook writer: what an admin sees when the file opens (read back with openpyxl)."""

from __future__ import annotations

import datetime as dt
import hashlib
import zipfile
import zlib

import duckdb
import pytest
from openpyxl import load_workbook

from skolon_pipeline.exports import xlsx


@pytest.fixture
def con():
    with duckdb.connect() as c:
        c.execute(
            """CREATE TABLE people AS SELECT * FROM (VALUES
                 ('Åsa & <Björk>', DATE '2026-12-12', 3, true, ['7A', '7B']),
                 (NULL, NULL, NULL, NULL, NULL),
                 ('tab' || chr(9) || 'bell' || chr(7) || 'end', DATE '1900-03-01', 0, false, [])
               ) v(name, visible_from, students, active, groups)"""
        )
        yield c


def test_values_types_and_nulls_survive(con, tmp_path):
    path = tmp_path / "t.xlsx"
    rows = xlsx.write_workbook(con, path, [xlsx.Sheet("People", "SELECT * FROM people")])
    assert rows == {"People": 3}
    ws = load_workbook(path)["People"]
    values = [[c.value for c in r] for r in ws.iter_rows()]
    assert values[0] == ["name", "visible_from", "students", "active", "groups"]
    assert values[1] == ["Åsa & <Björk>", dt.datetime(2026, 12, 12), 3, True, "[7A, 7B]"]
    assert values[2] == [None] * 5
    # XML 1.0 cannot carry most control characters: they are dropped, tab and the rest of the text stay
    assert values[3][0] == "tab\tbellend"
    assert values[3][1] == dt.datetime(1900, 3, 1)
    assert ws["B2"].number_format == "yyyy-mm-dd"


def test_header_is_frozen_bold_filtered_and_columns_sized(con, tmp_path):
    path = tmp_path / "t.xlsx"
    xlsx.write_workbook(
        con,
        path,
        [xlsx.Sheet("People", "SELECT * FROM people"), xlsx.Sheet("None", "SELECT * FROM people WHERE false")],
    )
    wb = load_workbook(path)
    ws = wb["People"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:E4"
    assert ws["A1"].font.b and not ws["A2"].font.b
    assert ws.column_dimensions["A"].width == len("Åsa & <Björk>") + 2  # the longest value
    assert ws.column_dimensions["B"].width == len("visible_from") + 2
    assert [[c.value for c in r] for r in wb["None"].iter_rows()] == [
        ["name", "visible_from", "students", "active", "groups"]
    ]


def test_sheet_longer_than_excel_allows_continues_on_numbered_sheets(con, tmp_path, monkeypatch):
    monkeypatch.setattr(xlsx, "MAX_ROWS", 4)  # header + 3 rows per sheet
    con.execute("CREATE TABLE n AS SELECT i FROM range(8) t(i) ORDER BY i DESC")
    path = tmp_path / "t.xlsx"
    sheet = xlsx.Sheet("Memberships", "SELECT rowid AS pos, i FROM n", position="pos")
    rows = xlsx.write_workbook(con, path, [sheet])
    assert rows == {"Memberships": 8}
    wb = load_workbook(path)
    assert wb.sheetnames == ["Memberships", "Memberships (2)", "Memberships (3)"]
    got = [next(c.value for c in r) for name in wb.sheetnames for r in wb[name].iter_rows(min_row=2)]
    assert got == list(range(7, -1, -1))  # the table's order, every row once; the position is in no cell
    assert all([c.value for c in wb[name][1]] == ["i"] for name in wb.sheetnames)


@pytest.mark.parametrize("read_bytes", [1, 7, 1 << 20])
def test_a_split_sheet_keeps_every_row_once_whatever_its_values_hold(con, tmp_path, monkeypatch, read_bytes):
    # Values may hold a newline or text that reads like a row's end, and a read may end anywhere in them.
    monkeypatch.setattr(xlsx, "MAX_ROWS", 4)  # header + 3 rows per sheet
    monkeypatch.setattr(xlsx, "READ_BYTES", read_bytes)
    con.execute(
        """CREATE TABLE n AS SELECT i, CASE i % 3 WHEN 0 THEN 'two' || chr(10) || 'lines' WHEN 1 THEN '</row><row>'
           ELSE 'x' || i END AS v FROM range(11) t(i)"""
    )
    path = tmp_path / "t.xlsx"
    sheet = xlsx.Sheet("M", "SELECT i, v, i * 10 AS p FROM n ORDER BY i", position="p")
    assert xlsx.write_workbook(con, path, [sheet]) == {"M": 11}
    wb = load_workbook(path)
    assert wb.sheetnames == ["M", "M (2)", "M (3)", "M (4)"]
    got = [tuple(c.value for c in r) for name in wb.sheetnames for r in wb[name].iter_rows(min_row=2)]
    assert got == [(i, ["two\nlines", "</row><row>", f"x{i}"][i % 3]) for i in range(11)]
    assert [wb[name].max_row for name in wb.sheetnames] == [4, 4, 4, 3]


def test_a_part_that_disagrees_with_its_count_is_an_error_not_a_short_or_long_sheet(con, tmp_path, monkeypatch):
    # A query whose rows are not the same twice: counted, then written.
    with pytest.raises(RuntimeError, match=r"wrote \d+ rows where \d+ were counted"):
        xlsx.write_workbook(
            con, tmp_path / "t.xlsx", [xlsx.Sheet("R", "SELECT i FROM range(100000) t(i) WHERE random() < 0.5")]
        )
    # A position that repeats: the first part's filter takes a row of the second.
    monkeypatch.setattr(xlsx, "MAX_ROWS", 4)
    con.execute("CREATE TABLE n AS SELECT i, i // 2 AS p FROM range(8) t(i)")
    with pytest.raises(RuntimeError, match="wrote 4 rows where 3 were counted"):
        xlsx.write_workbook(con, tmp_path / "t.xlsx", [xlsx.Sheet("M", "SELECT i, p FROM n ORDER BY i", position="p")])


def test_a_sheet_longer_than_one_part_needs_a_position(con, tmp_path, monkeypatch):
    monkeypatch.setattr(xlsx, "MAX_ROWS", 4)
    with pytest.raises(ValueError, match=r"'M' has 8 rows.*give it a position"):
        xlsx.write_workbook(con, tmp_path / "t.xlsx", [xlsx.Sheet("M", "SELECT i FROM range(8) t(i)")])
    xlsx.write_workbook(con, tmp_path / "t.xlsx", [xlsx.Sheet("M", "SELECT i FROM range(3) t(i)")])  # one part


def test_package_is_a_valid_zip_with_the_parts_excel_needs(con, tmp_path):
    path = tmp_path / "t.xlsx"
    xlsx.write_workbook(con, path, [xlsx.Sheet("People", "SELECT * FROM people")])
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert {
            "[Content_Types].xml",
            "_rels/.rels",
            "xl/workbook.xml",
            "xl/_rels/workbook.xml.rels",
            "xl/styles.xml",
            "xl/worksheets/sheet1.xml",
        } <= set(zf.namelist())


def test_every_part_carries_its_own_checksum_and_size_over_many_writes(con, tmp_path):
    # A worksheet reaches the zip in reads of READ_BYTES, each checksummed and deflated by ISA-L: the CRC-32 and
    # the size in the zip's directory are those of the whole part (zlib's own CRC-32 as the independent check).
    path = tmp_path / "t.xlsx"
    query = "SELECT i, md5(i::VARCHAR) AS h, repeat('x', i % 50) AS pad FROM range(60000) t(i) ORDER BY i"
    assert xlsx.write_workbook(con, path, [xlsx.Sheet("Big", query)]) == {"Big": 60000}
    with zipfile.ZipFile(path) as zf:
        sheet = zf.getinfo("xl/worksheets/sheet1.xml")
        assert sheet.file_size > 3 * xlsx.READ_BYTES
        for info in zf.infolist():
            data = zf.read(info)
            assert (zlib.crc32(data), len(data)) == (info.CRC, info.file_size), info.filename
    assert [c.value for c in load_workbook(path, read_only=True)["Big"][60001]][:2] == [
        59999,
        hashlib.md5(b"59999").hexdigest(),
    ]


def test_column_letters():
    assert [xlsx.column_letter(n) for n in (1, 26, 27, 52, 703)] == ["A", "Z", "AA", "AZ", "AAA"]


@pytest.mark.parametrize("value", [" leading", "trailing ", "\tTab", "line\n", "  both  ", "in side"])
def test_whitespace_at_either_end_is_kept_and_only_such_cells_say_so(tmp_path, value):
    # Without xml:space="preserve" an XML reader may drop whitespace at the ends of a text; the attribute costs
    # 19 bytes a cell, so the plain values do without it.
    path = tmp_path / "t.xlsx"
    with duckdb.connect() as c:
        c.execute("CREATE TABLE t AS SELECT ? AS v, 'plain' AS p", [value])
        xlsx.write_workbook(c, path, [xlsx.Sheet("T", "SELECT v, p FROM t")])
    assert [c.value for c in load_workbook(path)["T"][2]] == [value, "plain"]
    with zipfile.ZipFile(path) as zf:
        sheet = zf.read("xl/worksheets/sheet1.xml").decode()
    row = sheet[sheet.index("<row>", sheet.index("</row>")) :]
    edges = value != value.strip()
    assert ('<t xml:space="preserve">' in row.split("</c>")[0]) == edges
    assert "<is><t>plain</t></is>" in row
