"""School Admin over HTTP (the ASGI test client): who sees what, logins, sessions, headers, the access log."""

from __future__ import annotations

import io
import json
import os
import re
import time

import openpyxl
import pytest

from skolon_pipeline.serve import accounts, oidc
from skolon_pipeline.serve.scope import Scope, build
from skolon_pipeline_tests.school_admin import (
    GYMNASIUM,
    LINDBYSKOLAN,
    NORRBY,
    PASSWORD,
    app_for,
    client,
    csrf_of,
    demo_site,
    login,
)

CIVIC = re.compile(r"(?<!\d)(19|20)\d{6}[-+]?\w{4}(?!\d)")


@pytest.fixture(scope="module")
def site(demo_warehouse, tmp_path_factory):
    return demo_site(tmp_path_factory.mktemp("school-admin"), demo_warehouse)


@pytest.fixture(scope="module")
def app(site):
    return app_for(site)


@pytest.fixture(scope="module")
def gymnasium(app):
    return login(app, "rektor.gymnasiet")


@pytest.fixture(scope="module")
def norrby(app):
    return login(app, "rektor.norrby")


@pytest.fixture(scope="module")
def org(app):
    return login(app, "it.lindby")


def person_at(site, school: str, excluded: bool = False, protected: bool = False) -> str:
    sid = site.schools[school]["school_id"]
    if excluded:
        return site.query(
            """SELECT person_id FROM diagnostics.excluded_persons WHERE school_id = ?
                             ORDER BY person_id LIMIT 1""",
            [sid],
        )[0][0]
    return site.query(
        """SELECT u.user_id FROM roster.users u JOIN roster.school_affiliations a USING (user_id)
           WHERE a.school_id = ? AND u.protected_identity = ? GROUP BY 1 HAVING count(DISTINCT a.school_id) = 1
           ORDER BY 1 LIMIT 1""",
        [sid, protected],
    )[0][0]


def group_at(site, school: str) -> str:
    return site.query(
        "SELECT group_id FROM roster.groups WHERE school_id = ? ORDER BY 1 LIMIT 1", [site.schools[school]["school_id"]]
    )[0][0]


def counts(html: str, school_id: str) -> dict[str, int]:
    row = re.search(rf'<tr data-school-id="{school_id}">(.*?)</tr>', html, re.S).group(1)
    return {k: int(v) for k, v in re.findall(r'data-col="(\w+)">(\d+)<', row)}


# ─── Scope: every page, person, group, search hit and file of another school is a 404 ─────────────────────
def test_overview_shows_only_the_admins_school_with_the_counts_of_school_counts(site, gymnasium, org):
    page = gymnasium.get("/").text
    gym = site.schools[GYMNASIUM]["school_id"]
    expected = site.query(
        """SELECT students, teachers, staff, classes, "groups", memberships, excluded_persons,
                                    excluded_groups, excluded_memberships FROM diagnostics.school_counts
                             WHERE school_id = ?""",
        [gym],
    )[0]
    assert list(counts(page, gym).values()) == list(expected)
    assert site.schools[NORRBY]["school_id"] not in page and NORRBY not in page and LINDBYSKOLAN not in page
    assert 'id="night">2025-12-15<' in page  # the night
    assert '<time class="drop-date">2025-12-14</time>' in page  # the drop it read
    assert "<svg" in page and "polyline" in page  # the trend
    every = org.get("/").text
    for name, s in site.schools.items():
        assert name in every
        assert sum(counts(every, s["school_id"]).values()) > 0
    assert "utan skola" in every  # held back without a school: the authority admin's only


def test_a_school_of_another_school_is_a_404_identical_to_one_that_does_not_exist(site, gymnasium):
    other = gymnasium.get(f"/schools/{site.schools[NORRBY]['school_id']}")
    missing = gymnasium.get("/schools/00000000-0000-0000-0000-000000000000")
    assert other.status_code == missing.status_code == 404
    assert other.text == missing.text and dict(other.headers) == dict(missing.headers) | {
        "content-length": other.headers["content-length"]
    }
    assert gymnasium.get(f"/schools/{site.schools[GYMNASIUM]['school_id']}").status_code == 200


@pytest.mark.parametrize("kind", ["persons", "persons-excluded", "persons-protected", "groups"])
def test_a_person_or_group_of_another_school_is_a_404_identical_to_a_missing_id(site, gymnasium, norrby, kind):
    if kind == "groups":
        mine, theirs = group_at(site, GYMNASIUM), group_at(site, NORRBY)
    else:
        flags = {"excluded": kind == "persons-excluded", "protected": kind == "persons-protected"}
        mine, theirs = person_at(site, GYMNASIUM, **flags), person_at(site, NORRBY, **flags)
    route = kind.split("-")[0]
    assert gymnasium.get(f"/{route}/{mine}").status_code == 200
    assert norrby.get(f"/{route}/{theirs}").status_code == 200
    other = gymnasium.get(f"/{route}/{theirs}")
    missing = gymnasium.get(f"/{route}/ffffffff-ffff-ffff-ffff-ffffffffffff")
    assert other.status_code == missing.status_code == 404
    assert other.text == missing.text
    assert theirs not in other.text


def test_search_finds_nobody_of_another_school(site, gymnasium, norrby, org):
    # Johan Åberg is held back at Norrby skola (MISSING_EMAIL)
    assert "Johan Åberg" in norrby.get("/search", params={"q": "johan åberg"}).text
    assert "Johan Åberg" in org.get("/search", params={"q": "johan aberg"}).text
    page = gymnasium.get("/search", params={"q": "johan åberg"}).text
    assert "Johan Åberg" not in page and 'id="no-match"' in page
    theirs = person_at(site, NORRBY)
    page = gymnasium.get("/search", params={"q": theirs}).text
    assert f"/persons/{theirs}" not in page and 'id="no-match"' in page
    # a membership id of another school's group
    membership = site.query(
        """SELECT m.group_id || '/' || m.user_id FROM roster.memberships m
                               JOIN roster.groups g USING (group_id) WHERE g.school_id = ? LIMIT 1""",
        [site.schools[NORRBY]["school_id"]],
    )[0][0]
    assert 'id="no-match"' in gymnasium.get("/search", params={"q": membership}).text


def test_search_answers_as_explain_does_with_reason_and_date(gymnasium):
    page = gymnasium.get("/search", params={"q": "lundin"}).text
    assert "Ylva Lundin" in page
    assert "PLACEMENT_NOT_STARTED" in page and "Skolplaceringen har inte börjat ännu" in page and "2026-03-01" in page


def test_an_authority_admin_of_another_authority_sees_nothing(app, site):
    c = login(app, "other.authority")
    page = c.get("/").text
    for name in site.schools:
        assert name not in page
    assert c.get(f"/persons/{person_at(site, GYMNASIUM)}").status_code == 404
    assert c.get("/validation-file", params={"authority": site.schools[GYMNASIUM]["authority"]}).status_code == 404


def test_a_school_admin_by_school_id_sees_that_school(app, site):
    c = login(app, "rektor.lindbyskolan")
    page = c.get("/").text
    assert LINDBYSKOLAN in page and GYMNASIUM not in page


@pytest.mark.slow
def test_the_validation_file_holds_the_admins_school_only(site, gymnasium, org):
    listing = gymnasium.get("/validation-file").text
    authority = site.schools[GYMNASIUM]["authority"]
    assert f"authority={authority}" in listing
    r = gymnasium.get("/validation-file", params={"authority": authority})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxml")
    assert "valideringsfil_lindby-kommun_2025-12-15.xlsx" in r.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    summary = list(book[book.sheetnames[0]].iter_rows(values_only=True))
    text = json.dumps([list(map(str, r)) for s in book.sheetnames for r in book[s].iter_rows(values_only=True)])
    assert GYMNASIUM in text and NORRBY not in text and LINDBYSKOLAN not in text
    assert len(summary) >= 2
    whole = openpyxl.load_workbook(
        io.BytesIO(org.get("/validation-file", params={"authority": authority}).content), read_only=True
    )
    whole_text = json.dumps([list(map(str, r)) for s in whole.sheetnames for r in whole[s].iter_rows(values_only=True)])
    assert NORRBY in whole_text and LINDBYSKOLAN in whole_text
    assert gymnasium.get("/validation-file", params={"authority": "someone-else"}).status_code == 404


def test_the_scoped_copy_holds_nothing_outside_the_scope(site):
    gym = site.schools[GYMNASIUM]
    built = build(site.warehouse, Scope(schools=(gym["code"],)))
    con = built.con
    assert [
        r[0] for r in con.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal").fetchall()
    ] == ["memory"]  # the warehouse file is not attached: nothing but the copy can be read
    assert {r[0] for r in con.execute("SELECT DISTINCT school_id FROM history.schools").fetchall()} == {
        gym["school_id"]
    }
    assert {r[0] for r in con.execute("SELECT DISTINCT school_id FROM history.groups").fetchall()} == {gym["school_id"]}
    assert con.execute("SELECT count(*) FROM history.users WHERE civic_no_hash IS NOT NULL").fetchone()[0] == 0
    others = site.query(
        """SELECT user_id FROM roster.school_affiliations GROUP BY 1
                           HAVING NOT list_contains(list(school_id), ?)""",
        [gym["school_id"]],
    )
    seen = {r[0] for r in con.execute("SELECT user_id FROM history.users").fetchall()}
    members = {r[0] for r in con.execute("SELECT user_id FROM history.memberships").fetchall()}
    assert not ({u for (u,) in others} & seen - members)  # someone else's only through a group of this school
    with pytest.raises(Exception, match="held_changes"):
        con.execute("SELECT * FROM history.held_changes")
    con.close()


# ─── What a page shows ─────────────────────────────────────────────────────────────────────────────────────
def test_the_school_page_lists_everyone_held_back_with_what_to_fix_and_when(site, gymnasium):
    sid = site.schools[GYMNASIUM]["school_id"]
    page = gymnasium.get(f"/schools/{sid}").text
    for reason, text in (
        ("PLACEMENT_NOT_STARTED", "visas från 2026-03-01"),
        ("EMPLOYMENT_NOT_STARTED", "2026-02-01"),
        ("INVALID_EMAIL", "Anna Berg"),
        ("NO_GROUP_ASSIGNMENT", "Ylva Engström"),
    ):
        assert reason in page and text in page
    filtered = gymnasium.get(f"/schools/{sid}", params={"reason": "INVALID_EMAIL"}).text
    assert "Anna Berg" in filtered and "Ylva Lundin" not in filtered
    assert "Klass" in page  # groups with counts


def test_a_person_page_shows_reasons_schools_and_history(site, gymnasium):
    pid = site.query("SELECT person_id FROM diagnostics.excluded_persons WHERE family_name = 'Lundin'")[0][0]
    page = gymnasium.get(f"/persons/{pid}").text
    assert "Ylva Lundin" in page and 'id="in-roster" class="no"' in page
    assert "Skolplaceringen har inte börjat ännu" in page and "2026-03-01" in page and GYMNASIUM in page
    included = gymnasium.get(f"/persons/{person_at(site, GYMNASIUM)}").text
    assert 'id="in-roster" class="yes"' in included and "/groups/" in included


def test_protected_identity_is_masked_and_placed_in_no_group(site, gymnasium):
    pid = person_at(site, GYMNASIUM, protected=True)
    name = site.query("SELECT given_name, family_name FROM roster.users WHERE user_id = ?", [pid])[0]
    page = gymnasium.get(f"/persons/{pid}").text
    assert "Skyddad identitet" in page and name[1] not in page and "/groups/" not in page
    groups = [g for (g,) in site.query("SELECT group_id FROM roster.memberships WHERE user_id = ?", [pid])]
    for g in groups:
        assert pid not in gymnasium.get(f"/groups/{g}").text
    found = gymnasium.get("/search", params={"q": f"{name[0]} {name[1]}"}).text
    assert pid not in found  # the name finds only the other, unprotected Liam Jakobsson (if any)


def test_english_switch(gymnasium):
    r = gymnasium.get("/language/en", params={"next": "/search"})
    assert r.status_code == 303 and r.headers["location"] == "/search"
    page = gymnasium.get("/search", params={"q": "lundin"}).text
    assert "The school placement has not started yet" in page and 'lang="en"' in page
    assert gymnasium.get("/language/sv", params={"next": "//evil.example/"}).headers["location"] == "/"
    assert 'lang="sv"' in gymnasium.get("/").text


# ─── Civic numbers, the access log, headers ────────────────────────────────────────────────────────────────
@pytest.mark.slow
def test_no_page_shows_a_civic_number_and_none_is_searched_or_logged(site, app, org):
    pages_seen = [org.get(p).text for p in ("/", "/search?q=lind", f"/schools/{site.schools[NORRBY]['school_id']}")]
    pages_seen += [org.get(f"/persons/{p}").text for (p,) in site.query("SELECT user_id FROM roster.users LIMIT 20")]
    for html in pages_seen:
        assert not CIVIC.search(re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "", html))
    r = org.get("/search", params={"q": "20120101-1234"})
    assert "20120101" not in r.text and "personnummer" in r.text
    org.get("/persons/201201011234")
    log = (site.data_dir / "admin-access.jsonl").read_text()
    assert "201201011234" not in log


def test_every_person_and_group_page_viewed_is_in_the_access_log(site, app):
    c = login(app, "rektor.norrby")
    pid, gid = person_at(site, NORRBY), group_at(site, NORRBY)
    c.get(f"/persons/{pid}")
    c.get(f"/groups/{gid}")
    c.get(f"/persons/{person_at(site, GYMNASIUM)}")  # not theirs: logged as not found
    entries = [json.loads(line) for line in (site.data_dir / "admin-access.jsonl").read_text().splitlines()]
    mine = [e for e in entries if e["user"] == "rektor.norrby"]
    assert {"page": "person", "id": pid, "found": True}.items() <= mine[-3].items()
    assert {"page": "group", "id": gid, "found": True}.items() <= mine[-2].items()
    assert mine[-1]["found"] is False and mine[-1]["night"] == "2025-12-15" and mine[-1]["time"]
    assert oct(os.stat(site.data_dir / "admin-access.jsonl").st_mode & 0o777) == "0o600"


def test_security_headers(site, gymnasium):
    r = gymnasium.get(f"/persons/{person_at(site, GYMNASIUM)}")
    csp = r.headers["content-security-policy"]
    assert "script-src" not in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in r.text and " style=" not in r.text
    assert client(gymnasium.app).get("/static/app.css").headers["cache-control"].startswith("public")


# ─── Logins and sessions ───────────────────────────────────────────────────────────────────────────────────
def test_every_page_needs_a_login(app, site):
    c = client(app)
    for path in (
        "/",
        f"/schools/{site.schools[NORRBY]['school_id']}",
        "/search?q=a",
        f"/persons/{person_at(site, NORRBY)}",
        "/persons/nonexistent",
        "/groups/x",
        "/validation-file",
    ):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/")


def test_login_sets_a_signed_httponly_samesite_cookie_secure_over_https(app):
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        c = client(app, base)
        token = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"username": "rektor.norrby", "password": PASSWORD, "csrf": token, "next": "/"})
        cookie = r.headers["set-cookie"].lower()
        assert r.status_code == 303 and "httponly" in cookie and "samesite=lax" in cookie
        assert ("secure" in cookie) is secure
        assert "rektor.norrby" not in r.headers["set-cookie"] or "." in r.headers["set-cookie"]  # signed
        assert c.get("/").status_code == 200
        c.cookies.set("skolon_admin", c.cookies.get("skolon_admin")[:-3] + "abc")  # tampered
        assert c.get("/").status_code == 303


def test_wrong_password_and_csrf(app):
    c = client(app)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": "rektor.norrby", "password": "wrong password", "csrf": token})
    assert r.status_code == 401 and "Fel användarnamn eller lösenord" in r.text
    r = c.post("/login", data={"username": "nobody", "password": PASSWORD, "csrf": token})
    assert r.status_code == 401  # same answer for an unknown username
    r = c.post("/login", data={"username": "rektor.norrby", "password": PASSWORD})
    assert r.status_code == 400 and c.get("/").status_code == 303  # no CSRF token: no session
    r = c.post(
        "/login",
        data={"username": "rektor.norrby", "password": PASSWORD, "csrf": token},
        headers={"origin": "https://evil.example"},
    )
    assert r.status_code == 400
    r = c.post(
        "/login",
        data={"username": "rektor.norrby", "password": PASSWORD, "csrf": token, "next": "https://evil.example/"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_logout_needs_the_csrf_token_and_ends_the_session(app):
    c = login(app, "rektor.norrby")
    assert c.post("/logout", data={}).status_code == 400
    assert c.get("/").status_code == 200
    token = csrf_of(c.get("/").text)
    r = c.post("/logout", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert c.get("/").status_code == 303


def test_failed_logins_are_rate_limited_per_username_and_per_address(site):
    app = app_for(site, failures_per_username="3 per 15 minutes", failures_per_address="5 per 15 minutes")
    c = client(app)
    token = csrf_of(c.get("/login").text)

    def attempt(user, password="wrong password"):
        return c.post("/login", data={"username": user, "password": password, "csrf": token}).status_code

    assert [attempt("rektor.norrby") for _ in range(3)] == [401, 401, 401]
    assert attempt("rektor.norrby", PASSWORD) == 429  # locked, even with the right password
    assert attempt("rektor.gymnasiet") == 401 and attempt("it.lindby") == 401  # other names: 5 from this address
    assert attempt("rektor.gymnasiet", PASSWORD) == 429  # the address is locked


def test_sessions_expire_and_end_when_the_account_is_removed_or_its_password_changes(site, monkeypatch):
    app = app_for(site, session_hours=1, idle_minutes=10)
    c = login(app, "rektor.norrby")
    assert c.get("/").status_code == 200
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 11 * 60)
    assert c.get("/").status_code == 303  # idle too long
    monkeypatch.setattr(time, "time", real)
    c = login(app, "rektor.norrby")
    path = accounts.path_in(site.data_dir)
    accounts.add(path, "rektor.norrby", Scope(schools=(site.schools[NORRBY]["code"],)), "a new password!")
    assert c.get("/").status_code == 303
    c = login(app, "rektor.norrby", "a new password!")
    accounts.remove(path, "rektor.norrby")
    assert c.get("/").status_code == 303
    accounts.add(path, "rektor.norrby", Scope(schools=(site.schools[NORRBY]["code"],)), PASSWORD)


def test_admins_file_that_others_may_read_is_refused(site, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(site.data_dir, data)
    os.chmod(data / "admins.yaml", 0o644)
    with pytest.raises(accounts.AccountError, match="chmod 600"):
        from skolon_pipeline.serve.app import AppSettings, create_app

        create_app(AppSettings(warehouse=site.warehouse, data_dir=data))


# ─── A new night, and a run holding the warehouse ──────────────────────────────────────────────────────────
@pytest.mark.slow
def test_the_new_night_is_shown_once_published(site, tmp_path):
    import datetime as dt
    import shutil

    from skolon_pipeline import night
    from skolon_pipeline.config import load_installation
    from skolon_pipeline.serve.app import AppSettings, create_app
    from skolon_pipeline_tests.conftest import Path

    wh = tmp_path / "warehouse.duckdb"
    shutil.copy(site.warehouse, wh)
    app = create_app(AppSettings(warehouse=wh, data_dir=site.data_dir))
    c = login(app, "rektor.gymnasiet")
    assert 'id="night">2025-12-15<' in c.get("/").text
    night.run_night(
        load_installation(Path(__file__).resolve().parents[1] / "data"), dt.date(2025, 12, 16), wh, tmp_path / "staging"
    )
    sw = next(iter(app.state.skolon.scopes.values()))
    sw.wait_until_current()
    page = c.get("/").text
    assert 'id="night">2025-12-16<' in page


def test_a_page_waits_for_a_publish_then_answers_503_and_serves_the_last_copy_meanwhile(site, tmp_path):
    import shutil
    import subprocess
    import sys

    wh = tmp_path / "warehouse.duckdb"
    shutil.copy(site.warehouse, wh)
    app = app_for(site, retry_seconds=0.3)
    app.state.skolon.settings.warehouse = wh
    c = login(app, "rektor.gymnasiet")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(30)"
            ),
            str(wh),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = c.get("/")
        assert r.status_code == 503 and r.headers["retry-after"] and "publicerar" in r.text
    finally:
        holder.kill()
        holder.wait()
    assert c.get("/").status_code == 200
    # with a copy built, a run holding the lock does not stop the pages
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); con.execute('CREATE TABLE IF NOT EXISTS x (a INT)');"
                "con.execute('CHECKPOINT'); print('locked', flush=True); time.sleep(30)"
            ),
            str(wh),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        for _ in range(3):
            assert c.get("/").status_code == 200
    finally:
        holder.kill()
        holder.wait()


# ─── The identity provider's claims ───────────────────────────────────────────────────────────────────────
def test_oidc_claims_map_to_a_scope_and_the_login_redirects_to_the_provider(site, tmp_path):
    import shutil

    config = {
        "client_id": "skolon-admin",
        "authorize_url": "https://idp.example/authorize",
        "token_url": "https://idp.example/token",
        "scope_claim": "groups",
        "scopes": {
            "lindby-it": {"authority": site.schools[GYMNASIUM]["authority"]},
            "rektor-norrby": {"schools": [site.schools[NORRBY]["code"]]},
        },
    }
    assert oidc.scope_for(["x", "rektor-norrby"], config) == Scope(schools=(site.schools[NORRBY]["code"],))
    assert oidc.scope_for(["unknown"], config) is None
    assert oidc.claim_values({"groups": "lindby-it"}, "groups") == ["lindby-it"]
    data = tmp_path / "data"
    shutil.copytree(site.data_dir, data)
    admins = accounts.load(data / "admins.yaml")
    admins.oidc = config
    accounts.save(data / "admins.yaml", admins)
    from skolon_pipeline.serve.app import AppSettings, create_app

    c = client(create_app(AppSettings(warehouse=site.warehouse, data_dir=data)))
    assert "/login/oidc" in c.get("/login").text
    r = c.get("/login/oidc")
    assert r.status_code == 302 and r.headers["location"].startswith("https://idp.example/authorize?")
    assert "client_id=skolon-admin" in r.headers["location"] and "state=" in r.headers["location"]


# ─── skolon-pipeline admin ────────────────────────────────────────────────────────────────────────────────
def test_admin_add_list_remove(site, tmp_path, monkeypatch, capsys):
    from skolon_pipeline.cli import main

    data = tmp_path / "data"
    flags = ["--data-dir", str(data), "--warehouse", str(site.warehouse)]
    code = site.schools[NORRBY]["code"]
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["admin", "add", "Rektor.Norrby", "--school", code, "--password-stdin", *flags]) == 0
    assert NORRBY in capsys.readouterr().out
    path = data / "admins.yaml"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    text = path.read_text()
    assert "a long enough password" not in text and "$argon2id$" in text and "rektor.norrby" in text
    assert accounts.verify(accounts.load(path), "rektor.norrby", "a long enough password")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["admin", "add", "x", "--school", "00000000", "--password-stdin", *flags]) == 2
    assert "no published night has the school" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert (
        main(["admin", "add", "y", "--authority", site.schools[NORRBY]["authority"], "--password-stdin", *flags]) == 2
    )
    assert "at least" in capsys.readouterr().err
    assert main(["admin", "list", *flags]) == 0
    out = capsys.readouterr().out
    assert f"rektor.norrby\tschool {code}" in out and "argon2" not in out
    assert main(["admin", "remove", "rektor.norrby", *flags]) == 0
    assert main(["admin", "remove", "rektor.norrby", *flags]) == 1
    assert "rektor.norrby" not in path.read_text()


def test_an_unknown_username_is_refused_after_an_argon2_verification_like_a_wrong_password(monkeypatch):
    # The comparison hash is made on first use (not when any command imports the module), and still verified.
    real = accounts._hasher
    verified: list[str] = []

    class Spy:
        def hash(self, password: str) -> str:
            return real.hash(password)

        def verify(self, stored: str, password: str) -> bool:
            verified.append(stored)
            return real.verify(stored, password)

    monkeypatch.setattr(accounts, "_hasher", Spy())
    accounts.dummy_hash.cache_clear()
    try:
        assert accounts.verify(accounts.Admins(), "nobody.here", "a password of ten") is None
        assert accounts.verify(accounts.Admins(), "Not A Valid Name!", "a password of ten") is None
    finally:
        accounts.dummy_hash.cache_clear()
    assert len(verified) == 2 and all(h.startswith("$argon2id$") for h in verified)
