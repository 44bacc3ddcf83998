"""School Admin under load and over many nights: pages beyond the render queue are told to try again (and nobody
waits without bound), the server yields the CPU to the nightly run, and the search that the scoped copy prepares
once still answers as `explain` does (removed persons with when and why, protected identities by id only)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from skolon_pipeline.explain import find
from skolon_pipeline.serve import accounts, pages
from skolon_pipeline.serve.scope import Scope
from skolon_pipeline_tests.school_admin import GYMNASIUM, PASSWORD, app_for, demo_site, login

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(demo_warehouse, tmp_path_factory):
    return demo_site(tmp_path_factory.mktemp("school-admin-load"), demo_warehouse)


def wait_for(condition, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_beyond_the_render_queue_a_page_says_busy_at_once_and_a_wait_is_bounded(site, monkeypatch):
    app = app_for(site, render_slots=1, render_queue=1, render_wait_seconds=0.5)
    renders = app.state.skolon.renders
    first, second, third = (login(app, "rektor.gymnasiet") for _ in range(3))
    entered, release = threading.Event(), threading.Event()
    school_page = pages.school

    def slow_school(*args, **kwargs):  # a page that takes as long as the test says
        entered.set()
        assert release.wait(20)
        return school_page(*args, **kwargs)

    monkeypatch.setattr(pages, "school", slow_school)
    statuses: dict[str, int] = {}

    def get(name, c, path):
        statuses[name] = c.get(path).status_code

    sid = site.schools[GYMNASIUM]["school_id"]
    rendering = threading.Thread(target=get, args=("rendering", first, f"/schools/{sid}"))
    rendering.start()
    try:
        assert entered.wait(20)  # the only render slot is taken
        queued = threading.Thread(target=get, args=("queued", second, "/"))
        queued.start()
        wait_for(lambda: len(renders.waiting) == 1, "the second page to queue")
        busy = third.get("/search", params={"q": "lundin"})  # the queue is full: refused at once
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
        assert "Försök igen" in busy.text and "lundin" not in busy.text.lower()
        assert busy.headers["cache-control"] == "no-store" and "content-security-policy" in busy.headers
        queued.join(timeout=20)
        assert statuses["queued"] == 503  # waited its bounded while, then told to try again
        assert not renders.waiting
    finally:
        release.set()
        rendering.join(timeout=20)
    assert statuses["rendering"] == 200
    assert renders.active == 0
    # with the slot free again, pages answer; the stylesheet never waits
    assert third.get("/search", params={"q": "lundin"}).status_code == 200
    assert third.get("/static/app.css").status_code == 200


def test_a_queued_page_is_answered_when_the_slot_frees_in_time(site, monkeypatch):
    app = app_for(site, render_slots=1, render_queue=4, render_wait_seconds=20)
    renders = app.state.skolon.renders
    first, second = (login(app, "rektor.gymnasiet") for _ in range(2))
    entered, release = threading.Event(), threading.Event()
    overview = pages.overview

    def slow_overview(*args, **kwargs):
        entered.set()
        assert release.wait(20)
        return overview(*args, **kwargs)

    monkeypatch.setattr(pages, "overview", slow_overview)
    statuses: dict[str, int] = {}
    rendering = threading.Thread(target=lambda: statuses.setdefault("rendering", first.get("/").status_code))
    rendering.start()
    try:
        assert entered.wait(20)
        queued = threading.Thread(
            target=lambda: statuses.setdefault("queued", second.get("/search", params={"q": "lundin"}).status_code)
        )
        queued.start()
        wait_for(lambda: len(renders.waiting) == 1, "the second page to queue")
    finally:
        release.set()
    rendering.join(timeout=20)
    queued.join(timeout=20)
    assert statuses == {"rendering": 200, "queued": 200}


@pytest.mark.slow  # `skolon-pipeline serve` in a subprocess, its threads' niceness read from /proc
def test_serve_runs_at_low_cpu_priority_on_one_duckdb_thread_per_copy(site, tmp_path):
    """The web view yields the CPU to the nightly run: every thread of `skolon-pipeline serve` (DuckDB's and the
    thread pool's included) at niceness 10 or more (`--nice` lowers it further), and its copies on one DuckDB
    thread."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skolon_pipeline.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(site.data_dir),
            "--warehouse",
            str(site.warehouse),
            "--nice",
            "12",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                c = httpx.Client(base_url=url, timeout=30)
                token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
                time.sleep(0.2)
        assert (
            c.post("/login", data={"username": "rektor.gymnasiet", "password": PASSWORD, "csrf": token}).status_code
            == 303
        )
        assert c.get("/").status_code == 200 and c.get("/search", params={"q": "lundin"}).status_code == 200
        tasks = list(Path(f"/proc/{proc.pid}/task").iterdir())
        assert len(tasks) > 1
        assert {os.getpriority(os.PRIO_PROCESS, int(t.name)) for t in tasks} == {max(12, os.nice(0))}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    app = app_for(site)
    sw = app.state.skolon.warehouse_for(Scope(schools=(site.schools[GYMNASIUM]["code"],)))
    with sw.cursor() as cur:
        assert cur.execute("SELECT current_setting('threads')").fetchone()[0] == 1
    sw.close()


@pytest.mark.slow  # four nights published one after another
def test_the_search_finds_removed_persons_with_when_and_why_and_protected_ones_by_id_only(run_registry, tmp_path):
    from skolon_pipeline_tests.registry import Registry

    reg = Registry()
    school = reg.school()
    stays = [reg.student(school) for _ in range(3)]
    leaver = reg.student(school, given="Lova", family="Ängström", end="2026-12-02")
    deleted = reg.student(school, given="Ture", family="Sjöberg")
    hidden = reg.student(school, given="Tyra", family="Sjöberg", securityMarking="Skyddad folkbokföring")  # no group
    reg.group(school, members=[*stays, leaver, deleted])
    rules = {"max_removal_share": 1.0, "max_removal_share_week": 1.0}  # half the school leaves: no guard hold
    for day in ("2026-12-01", "2026-12-02"):
        run_registry(reg, as_of=day, rules=rules)
    reg.persons.remove(deleted)  # the registry stops sending them
    reg.persons.remove(hidden)
    for day in ("2026-12-03", "2026-12-04"):
        last = run_registry(reg, as_of=day, rules=rules)
    data = tmp_path / "admin"
    data.mkdir()
    accounts.add(accounts.path_in(data), "rektor", Scope(schools=("12345678",)), PASSWORD)
    from skolon_pipeline.serve.app import AppSettings, create_app

    app = create_app(AppSettings(warehouse=last.warehouse, data_dir=data))
    c = login(app, "rektor")

    page = c.get("/search", params={"q": "sjoberg"}).text  # accents ignored; only the unprotected one is found
    assert "Ture Sjöberg" in page and f"/persons/{deleted['id']}" in page
    assert ("I rostern till 2026-12-02; borttagen 2026-12-03: finns inte längre i elevregistrets export") in page
    assert "Finns inte längre i elevregistrets export sedan 2026-12-03 (senast med natten 2026-12-02)" in page
    assert hidden["id"] not in page and "Tyra" not in page and "Skyddad" not in page
    assert hidden["id"] not in c.get("/search", params={"q": hidden["emails"][0]["value"]}).text

    page = c.get("/search", params={"q": "lova angstrom"}).text
    assert (
        "I rostern till 2026-12-02; borttagen 2026-12-03: Skolplaceringen har upphört "
        "(the last enrolment ended on 2026-12-02)"
    ) in page

    by_id = c.get(f"/persons/{hidden['id']}")  # by id: found, masked, and when she left
    assert by_id.status_code == 200 and "Skyddad identitet" in by_id.text and "Tyra" not in by_id.text
    assert "borttagen 2026-12-03" in by_id.text and hidden["emails"][0]["value"] not in by_id.text

    # the same answers as `skolon-pipeline explain` on the warehouse file (which makes its search tables per search)
    built = app.state.skolon.warehouse_for(Scope(schools=("12345678",))).current
    for query in ("sjoberg", "lova angstrom", hidden["id"], deleted["emails"][0]["value"], "tyra"):
        with built.cursor() as cur:
            web = pages.search(cur, query, built.night)
        cli = find(last.warehouse, query)
        assert [(f.id, f.name, f.in_drop, f.past) for f in web.found] == [
            (f.id, f.name, f.in_drop, f.past) for f in cli.found
        ], query
