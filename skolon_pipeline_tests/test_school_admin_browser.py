"""School Admin in a real browser: Playwright for Python driving Debian's Chromium (/usr/bin/chromium; no browser
download) against uvicorn on 127.0.0.1 on an ephemeral port.

With SKOLON_SCREENSHOT_DIR set, the four main pages are also saved there as PNGs (docs/images is made so:
`SKOLON_SCREENSHOT_DIR=docs/images python -m pytest skolon_pipeline_tests/test_school_admin_browser.py`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import openpyxl
import pytest

from skolon_pipeline_tests.school_admin import GYMNASIUM, NORRBY, PASSWORD, app_for, demo_site

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
]

pytestmark = [
    pytest.mark.slow,  # a real browser
    pytest.mark.skipif(
        not CHROMIUM.exists() or shutil.which("chromium") is None,
        reason="Debian's chromium is not installed (.ci/run installs it)",
    ),
]


@pytest.fixture(scope="module")
def server(demo_warehouse, tmp_path_factory):
    """uvicorn serving the demo night's School Admin on 127.0.0.1, an ephemeral port; stopped at the end."""
    import uvicorn

    site = demo_site(tmp_path_factory.mktemp("browser"), demo_warehouse)
    if os.environ.get("SKOLON_SCREENSHOT_DIR"):  # a few more nights, so the trend has a line to draw
        import datetime as dt

        from skolon_pipeline import night
        from skolon_pipeline.config import load_installation

        installation = load_installation(Path(__file__).resolve().parents[1] / "data")
        for day in range(16, 21):
            night.run_night(installation, dt.date(2025, 12, day), site.warehouse, site.warehouse.parent / "staging")
    app = app_for(site)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield site, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=60_000)
        yield b
        b.close()


def _shot(page, name: str) -> None:
    folder = os.environ.get("SKOLON_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_a_school_admin_logs_in_sees_their_school_searches_downloads_and_cannot_open_another_school(
    server, browser, tmp_path
):
    site, base = server
    gym = site.schools[GYMNASIUM]
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900}, locale="sv-SE")
    context.set_default_timeout(30_000)
    page = context.new_page()

    # Log in as the demo's school admin (Lindby gymnasium)
    page.goto(base + "/")
    assert page.url.startswith(base + "/login")
    _shot(page, "login")
    page.fill("#username", "rektor.gymnasiet")
    page.fill("#password", PASSWORD)
    page.click("section.login button[type=submit]")
    page.wait_for_url(base + "/")
    night = site.query("SELECT max(as_of) FROM nightly.nights")[0][0].isoformat()
    assert page.inner_text("#night") == night

    # The school's counts are diagnostics.school_counts'
    expected = dict(
        zip(
            (
                "students",
                "teachers",
                "staff",
                "classes",
                "teaching_groups",
                "memberships",
                "excluded_persons",
                "excluded_groups",
                "excluded_memberships",
            ),
            site.query(
                """SELECT students, teachers, staff, classes, "groups", memberships, excluded_persons,
                             excluded_groups, excluded_memberships FROM diagnostics.school_counts WHERE school_id = ?""",
                [gym["school_id"]],
            )[0],
            strict=True,
        )
    )
    row = page.locator(f'tr[data-school-id="{gym["school_id"]}"]')
    shown = {col: int(row.locator(f'td[data-col="{col}"]').inner_text()) for col in expected}
    assert shown == expected
    assert page.locator("tr[data-school-id]").count() == 1  # no other school
    assert page.locator("svg.chart polyline").count() == 2
    _shot(page, "oversikt")

    # The school page: everyone held back, with what to fix and when
    page.click(f'#school-counts a[href="/schools/{gym["school_id"]}"]')
    page.wait_for_url(re.compile(r".*/schools/.*"))
    assert "PLACEMENT_NOT_STARTED" in page.inner_text("#held-back")
    _shot(page, "skola")

    # Search a held-back student: the reason and the date
    page.fill("header .quick-search input[name=q]", "ylva lundin")
    page.press("header .quick-search input[name=q]", "Enter")
    page.wait_for_url(re.compile(r".*/search\?q=.*"))
    result = page.locator("li.result").filter(has_text="Ylva Lundin")
    assert "Skolplaceringen har inte börjat ännu" in result.inner_text()
    assert "2026-03-01" in result.inner_text()
    _shot(page, "sok")
    result.locator("h2 a").click()
    page.wait_for_url(re.compile(r".*/persons/.*"))
    assert page.inner_text("#in-roster") == "Nej" and "2026-03-01" in page.inner_text("#reasons")
    _shot(page, "person")

    # Download the workbook
    page.click("header nav a[href='/validation-file']")
    with page.expect_download() as download:
        page.click("ul.downloads a")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name == f"valideringsfil_lindby-kommun_{night}.xlsx"
    book = openpyxl.load_workbook(path, read_only=True)
    cells = {str(c) for s in book.sheetnames for r in book[s].iter_rows(values_only=True) for c in r if c}
    assert GYMNASIUM in cells and NORRBY not in cells

    # Another school's person, by editing the URL: 404, as an id that does not exist
    theirs = site.query(
        """SELECT a.user_id FROM roster.school_affiliations a WHERE a.school_id = ?
                           AND a.user_id NOT IN (SELECT user_id FROM roster.school_affiliations WHERE school_id = ?)
                           ORDER BY 1 LIMIT 1""",
        [site.schools[NORRBY]["school_id"], gym["school_id"]],
    )[0][0]
    response = page.goto(f"{base}/persons/{theirs}")
    assert response.status == 404 and "Sidan finns inte" in page.inner_text("main")
    assert theirs not in page.content()

    # Log out: the pages need a login again
    page.click("header form[action='/logout'] button")
    page.wait_for_url(base + "/login")
    page.goto(base + "/")
    assert page.url.startswith(base + "/login")
    context.close()
