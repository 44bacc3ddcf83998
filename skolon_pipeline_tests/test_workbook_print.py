"""The workbook as an admin prints it: LibreOffice (an independent reader and printer, Debian's
libreoffice-calc-nogui, installed by .ci/run) converts the demo authority's workbook to PDF, and the pages are
read back with pypdf.

Each printed page starts with its sheet's header row, so the pages can be counted per sheet."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from skolon_pipeline.demo import DEMO_NIGHT
from skolon_pipeline.exports.validation_file import BOOK, write_validation_files

pytestmark = pytest.mark.slow  # LibreOffice starts and prints (about 20 s)

A4_LANDSCAPE = (842, 595)  # points, rounded
PAGES_BEFORE = 266  # the demo workbook as it printed before it was written for admins (issue 14)


def _pdf(xlsx: Path, out: Path) -> Path:
    soffice = shutil.which("soffice")
    assert soffice, "LibreOffice (soffice) is not installed: .ci/run installs libreoffice-calc-nogui"
    # A profile of its own: other test processes may run LibreOffice at the same time.
    subprocess.run(
        [
            soffice,
            "--headless",
            f"-env:UserInstallation={(out / 'profile').as_uri()}",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            str(xlsx),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return out / f"{xlsx.stem}.pdf"


@pytest.fixture(scope="module")
def printed(demo_warehouse, tmp_path_factory) -> tuple[list[tuple[int, int]], dict[str, list[str]]]:
    """The size of every printed page, and the text of each page by the sheet it belongs to (in workbook order)."""
    out = tmp_path_factory.mktemp("print")
    _, [written] = write_validation_files(demo_warehouse, out / "exports")
    pages = PdfReader(_pdf(written.xlsx, out)).pages
    sizes = [(round(float(p.mediabox.width)), round(float(p.mediabox.height))) for p in pages]
    per_sheet: dict[str, list[str]] = {}
    for text in (p.extract_text() for p in pages):
        sheet = next(
            (b.name("sv") for b in BOOK[1:] if text.startswith(" ".join(b.headers("sv")[:4]))), BOOK[0].name("sv")
        )
        per_sheet.setdefault(sheet, []).append(text)
    return sizes, per_sheet


def test_libreoffice_prints_every_page_landscape_with_the_header_row(printed):
    sizes, printed = printed
    assert set(sizes) == {A4_LANDSCAPE}
    assert list(printed) == [b.name("sv") for b in BOOK]  # every sheet prints, in order
    for book in BOOK[1:]:
        # the header row is repeated: every page of the sheet starts with it
        assert all(t.startswith(" ".join(book.headers("sv")[:4])) for t in printed[book.name("sv")]), book.name("sv")


def test_the_summary_prints_on_one_page_and_the_workbook_on_a_fifth_of_the_pages(printed):
    _, printed = printed
    (summary,) = printed["Sammanfattning"]
    assert summary.startswith("Valideringsfil — Lindby kommun")
    assert f"Natt {DEMO_NIGHT}" in summary and "export från 2025-12-14" in summary
    assert len(printed["Ej synkade"]) == 1
    total = sum(len(pages) for pages in printed.values())
    assert total <= PAGES_BEFORE / 5, {sheet: len(pages) for sheet, pages in printed.items()}
