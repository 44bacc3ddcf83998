"""The School Admin web application (Starlette + Jinja2, server-rendered, no JavaScript).

Routes (CONTRACT §6): `/login` (form fields `username`, `password`), `/logout`, `/`, `/schools/<school_id>`,
`/search?q=`, `/persons/<id>`, `/groups/<id>`, `/validation-file`; `/language/<sv|en>` switches the language.
Every page but the login form needs a session; every page reads the warehouse through the admin's scoped
connection (scope.py), so anything outside the scope answers exactly as an id that does not exist: 404.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import jinja2
from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from skolon_pipeline.files import FILE_MODE, private_dir
from skolon_pipeline.serve import accounts, oidc, pages
from skolon_pipeline.serve.chart import trend_svg
from skolon_pipeline.serve.i18n import DEFAULT, LANGUAGES, ROLE_KEYS, translator
from skolon_pipeline.serve.scope import NoWarehouse, Scope, ScopedWarehouse, WarehouseBusy

log = logging.getLogger("skolon_pipeline.serve")
HERE = Path(__file__).parent
SESSION_COOKIE = "skolon_admin"
LANG_COOKIE = "lang"
KEY_FILE = ".admin-session-key"
ACCESS_LOG = "admin-access.jsonl"
# A civic number (personnummer / samordningsnummer) as someone might type it: never echoed, logged or searched.
CIVIC = re.compile(r"(?<!\d)(\d{2})?\d{6}[-+]?\d{4}(?!\d)")
BUSY_RETRY_SECONDS = 5  # Retry-After of the busy page
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class AppSettings:
    warehouse: Path
    data_dir: Path
    session_hours: float = 8.0  # a session ends this long after the login
    idle_minutes: float = 60.0  # ... or after this long without a request
    retry_seconds: float = 5.0  # how long a page waits while a publish holds the warehouse
    failures_per_username: str = "5 per 15 minutes"
    failures_per_address: str = "20 per 15 minutes"
    access_log: Path | None = None  # default: $SKOLON_DATA_DIR/admin-access.jsonl
    session_secret: str | None = None  # default: a random key kept in $SKOLON_DATA_DIR/.admin-session-key
    max_scopes: int = 64  # scoped catalogs kept open between requests
    # Yielding to the nightly run (docs/school-admin.md, "Beside the nightly run"): pages are rendered at most
    # `render_slots` at a time, each on one DuckDB thread; up to `render_queue` more wait, each at most
    # `render_wait_seconds`; beyond that a page answers 503 "busy, try again" at once.
    duckdb_threads: int = 1
    render_slots: int = 1
    render_queue: int = 32
    render_wait_seconds: float = 10.0


def _session_secret(settings: AppSettings) -> str:
    if settings.session_secret:
        return settings.session_secret
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        private_dir(path.parent, owned=False)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


class AccessLog:
    """Who viewed which person or group page, when: one JSON object per line, in an owner-only file, so the
    school authority can answer a data-subject access request (`skolon-pipeline admin access ID`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, user: str, kind: str, an_id: str, found: bool, night: dt.date | None, address: str | None):
        entry = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "user": user,
            "page": kind,
            "id": an_id,
            "found": found,
            "night": night.isoformat() if night else None,
            "address": address,
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            private_dir(self.path.parent, owned=False)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(line)


class AccountStore:
    """admins.yaml, re-read when it changes (so removing an account or a new password takes effect at once)."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp: tuple | None = None
        self._admins = accounts.Admins()
        self._lock = threading.Lock()

    def get(self) -> accounts.Admins:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                if stamp is not None:
                    accounts.check_private(self.path)
                self._admins = accounts.load(self.path) if stamp else accounts.Admins()
                self._stamp = stamp
            return self._admins


@dataclass
class State:
    settings: AppSettings
    accounts: AccountStore
    access_log: AccessLog
    templates: Jinja2Templates
    limiter: MovingWindowRateLimiter
    per_username: object
    per_address: object
    renders: Renders
    scopes: OrderedDict = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def warehouse_for(self, scope: Scope) -> ScopedWarehouse:
        with self.lock:
            sw = self.scopes.pop(scope, None)
            if sw is None:
                sw = ScopedWarehouse(
                    self.settings.warehouse,
                    scope,
                    self.settings.retry_seconds,
                    threads=self.settings.duckdb_threads,
                    background=self.renders.background,
                )
            self.scopes[scope] = sw
            while len(self.scopes) > self.settings.max_scopes:
                _, old = self.scopes.popitem(last=False)
                old.close()
            return sw


def _state(request: Request) -> State:
    return request.app.state.skolon


# ─── Sessions, language, CSRF ──────────────────────────────────────────────────────────────────────────────
def _lang(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE)
    return lang if lang in LANGUAGES else DEFAULT


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def _csrf_ok(request: Request, form) -> bool:
    expected = request.session.get("csrf")
    given = form.get("csrf")
    if not expected or not isinstance(given, str) or not secrets.compare_digest(expected, given):
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"
    return True


def _safe_next(value: str | None) -> str:
    """Only a path on this site (never another host: no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or CIVIC.search(value):
        return "/"
    return value


def current_account(request: Request) -> accounts.Account | None:
    session = request.session
    username = session.get("user")
    if not username:
        return None
    now = time.time()
    s = _state(request).settings
    if now - session.get("login_at", 0) > s.session_hours * 3600 or now - session.get("seen", 0) > s.idle_minutes * 60:
        session.clear()
        return None
    admins = _state(request).accounts.get()
    if username.startswith(oidc.PREFIX):
        account = oidc.account_of(session, admins.oidc)
    else:
        account = admins.accounts.get(username)
    if account is None or session.get("ver") != account.session_version:
        session.clear()  # removed, or the password changed
        return None
    if now - session.get("seen", 0) > 60:
        session["seen"] = int(now)
    return account


def _role(t, role: str | None) -> str:
    return t(ROLE_KEYS[role]) if role in ROLE_KEYS else (role or "")


def render(request: Request, name: str, context: dict, status_code: int = 200) -> Response:
    lang = _lang(request)
    t = translator(lang)
    ctx = {
        "t": t,
        "lang": lang,
        "other_lang": "en" if lang == "sv" else "sv",
        "csrf": _csrf(request),
        "account": getattr(request.state, "account", None),
        "path": request.url.path,
        "role": lambda r: _role(t, r),
        "explanation": lambda code, visible=None: pages.explanation(code, visible, lang),
        "problem": lambda code: pages.problem(code, lang),
        "past": lambda f: pages.past(f, lang),
        **context,
    }
    return _state(request).templates.TemplateResponse(request, name, ctx, status_code=status_code)


def login_required(endpoint):
    """The page's account in request.state.account; without a session, the login form."""

    def wrapper(request: Request):
        account = current_account(request)
        if account is None:
            return RedirectResponse(f"/login?next={_safe_next(request.url.path)}", status_code=303)
        request.state.account = account
        return endpoint(request, account)

    wrapper.__name__ = endpoint.__name__
    return wrapper


def not_found():
    raise HTTPException(404)


# ─── Login and logout ──────────────────────────────────────────────────────────────────────────────────────
def login_form(request: Request) -> Response:
    if current_account(request) is not None:
        return RedirectResponse("/", status_code=303)
    return render(
        request,
        "login.html",
        {
            "next": _safe_next(request.query_params.get("next")),
            "error": None,
            "oidc": bool(_state(request).accounts.get().oidc),
        },
    )


async def login(request: Request) -> Response:
    state = _state(request)
    form = await request.form()
    username = str(form.get("username") or "")[:200]
    password = str(form.get("password") or "")
    next_path = _safe_next(str(form.get("next") or "/"))
    t = translator(_lang(request))

    def again(message: str, status: int) -> Response:
        return render(
            request,
            "login.html",
            {"next": next_path, "error": message, "username": username[:64], "oidc": bool(state.accounts.get().oidc)},
            status_code=status,
        )

    if not _csrf_ok(request, form):
        return again(t("login_expired"), 400)
    address = request.client.host if request.client else "unknown"
    name_key = username.strip().lower()
    if not (
        state.limiter.test(state.per_username, "user", name_key)
        and state.limiter.test(state.per_address, "address", address)
    ):
        log.warning("login refused: too many failures (user or address rate limit)")
        return again(t("login_locked"), 429)
    account = await run_in_threadpool(accounts.verify, state.accounts.get(), username, password)
    if account is None:
        state.limiter.hit(state.per_username, "user", name_key)
        state.limiter.hit(state.per_address, "address", address)
        log.info("login failed")
        return again(t("login_failed"), 401)
    accounts.start_session(request.session, account)
    return RedirectResponse(next_path, status_code=303)


async def logout(request: Request) -> Response:
    form = await request.form()
    if not _csrf_ok(request, form):
        raise HTTPException(400)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def language(request: Request) -> Response:
    lang = request.path_params["lang"]
    if lang not in LANGUAGES:
        not_found()
    response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    response.set_cookie(
        LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax", httponly=True, secure=request.url.scheme == "https"
    )
    return response


# ─── Pages ─────────────────────────────────────────────────────────────────────────────────────────────────
def _read(request: Request, account: accounts.Account, read, fresh: bool = False):
    """`read(cursor, night, copy)` on the account's scoped copy; night None when nothing is published. `fresh`:
    a cursor of its own for a reader that makes temp tables (the validation file), else a prepared one."""
    sw = _state(request).warehouse_for(account.scope)
    try:
        built = sw.current
    except NoWarehouse:
        return read(None, None, None)
    with built.fresh_cursor() if fresh else built.cursor() as cur:
        return read(cur, built.night, built)


def _installation_facts(settings: AppSettings, night: dt.date) -> tuple[dict[str, dt.date], object]:
    """Each source's drop that the night read (the newest dated on or before it, CONTRACT §2) and the
    installation's time zone; nothing when sources.yaml cannot be read (the page shows the rest)."""
    import zoneinfo

    from skolon_pipeline.config import ConfigError, load_installation
    from skolon_pipeline.sources.drops import find_drop

    try:
        installation = load_installation(settings.data_dir)
    except (ConfigError, OSError):
        return {}, None
    drops = {}
    for source in installation.sources:
        try:
            drops[source.id] = find_drop(source.id, source.root, night)[0]
        except Exception:  # a source without a drop for the night (it failed, or its drops were removed)
            continue
    return drops, zoneinfo.ZoneInfo(installation.timezone)


@login_required
def overview(request: Request, account: accounts.Account) -> Response:
    def read(cur, night, sw):
        if night is None:
            return None
        # the same for every request on one copy (the latest night's figures): computed once per copy
        if "overview" not in sw.cache:
            sw.cache["overview"] = pages.overview(cur, night, pages.trend(cur))
        return copy.deepcopy(sw.cache["overview"])

    data = _read(request, account, read)
    if data:
        drops, zone = _installation_facts(_state(request).settings, data.night)
        for src in data.sources:
            src["drop_date"] = drops.get(src["source_id"])
        if data.published_at is not None and zone is not None and data.published_at.tzinfo is not None:
            data.published_at = data.published_at.astimezone(zone)
    t = translator(_lang(request))
    chart = trend_svg(data.trend, {"users": t("trend_users"), "held_back": t("trend_held")}, t("trend")) if data else ""
    return render(request, "overview.html", {"o": data, "chart": chart})


@login_required
def school(request: Request, account: accounts.Account) -> Response:
    reason = request.query_params.get("reason") or None
    try:
        page = max(0, int(request.query_params.get("page", "0")))
    except ValueError:
        page = 0
    school_id = request.path_params["school_id"].strip().lower()
    data = _read(request, account, lambda cur, night, sw: night and pages.school(cur, school_id, reason, page))
    if not data:
        not_found()
    return render(request, "school.html", {"s": data, "reason": reason, "page": page})


@login_required
def search(request: Request, account: accounts.Account) -> Response:
    q = (request.query_params.get("q") or "").strip()[:200]
    message = None
    if q and CIVIC.search(q):
        message, q = "search_civic", ""
    elif q and len(q) < 2:
        message = "search_short"
    answer = None
    if q and not message:
        answer = _read(request, account, lambda cur, night, sw: night and pages.search(cur, q, night))
    return render(request, "search.html", {"q": q, "answer": answer, "message": message})


def _entity_page(request: Request, account: accounts.Account, kind: str, read, template: str) -> Response:
    an_id = request.path_params["id"].strip().lower()
    nights = []

    def reader(cur, night, sw):
        nights.append(night)
        return night and read(cur, an_id, night)

    data = _read(request, account, reader)
    shown = "<civic number?>" if CIVIC.search(an_id) else an_id[:200]
    _state(request).access_log.write(
        account.username,
        kind,
        shown,
        bool(data),
        nights[0] if nights else None,
        request.client.host if request.client else None,
    )
    if not data:
        not_found()
    return render(request, template, {"p": data})


@login_required
def person(request: Request, account: accounts.Account) -> Response:
    return _entity_page(request, account, "person", pages.person, "person.html")


@login_required
def group(request: Request, account: accounts.Account) -> Response:
    return _entity_page(request, account, "group", pages.group, "group.html")


@login_required
def validation_file(request: Request, account: accounts.Account) -> Response:
    from skolon_pipeline.exports import validation_file as vf

    wanted = request.query_params.get("authority")
    if wanted is None:

        def list_authorities(cur, night, sw):
            if night is None:
                return None
            if "authorities" not in sw.cache:  # the sheets are built once per copy, not per listing
                vf.prepare(cur, night)
                sw.cache["authorities"] = vf.authorities(cur)
            return night, sw.cache["authorities"]

        found = _read(request, account, list_authorities, fresh=True)
        return render(
            request,
            "validation_file.html",
            {"night": found[0] if found else None, "authorities": found[1] if found else []},
        )
    folder = Path(tempfile.mkdtemp(prefix="skolon-admin-file-"))  # 0700
    lang = _lang(request)

    def write(cur, night, sw):
        if night is None:
            return None
        vf.prepare(cur, night, lang)
        authority = next((a for a in vf.authorities(cur) if a.id == wanted), None)
        if authority is None:
            return None
        path, _ = vf.workbook(cur, authority, night, folder, lang)  # in the language the admin reads the view in
        return path

    try:
        path = _read(request, account, write, fresh=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if path is None:
        shutil.rmtree(folder, ignore_errors=True)
        not_found()
    return FileResponse(
        path,
        filename=path.name,
        background=BackgroundTask(shutil.rmtree, folder, True),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


# ─── Errors and headers ────────────────────────────────────────────────────────────────────────────────────
async def http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        # nothing of the request in the page (not even the language link's way back): one body for every 404
        return render(request, "error.html", {"title": "not_found", "text": "not_found_text", "path": "/"}, 404)
    return render(request, "error.html", {"title": "error", "text": "error_text", "path": "/"}, exc.status_code)


async def busy(request: Request, exc: Exception) -> Response:
    response = render(request, "error.html", {"title": "busy", "text": "busy_text", "path": "/"}, 503)
    response.headers["Retry-After"] = "10"
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    # The exception's type only: its text might quote data.
    log.error("error on %s %s: %s", request.method, _log_path(request.url.path), type(exc).__name__)
    return HTMLResponse("<!doctype html><title>500</title><p>Något gick fel / Something went wrong.</p>", 500)


def _log_path(path: str) -> str:
    return CIVIC.sub("<civic number?>", path)[:300]


class SecurityHeaders:
    """CSP without inline script, no framing, no sniffing, no referrer, and no-store on everything but the
    static files (every other page can show personal data). Also the request log: method, path (civic-number-
    looking digits masked), status and milliseconds; never the query string (a search is a name)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        static = scope["path"].startswith("/static/")
        status = {}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
                    (b"cache-control", b"public, max-age=3600" if static else b"no-store"),
                ]
                if scope.get("scheme") == "https":
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)
        if not static:
            log.info(
                "%s %s %s %.0f ms",
                scope["method"],
                _log_path(scope["path"]),
                status.get("code"),
                (time.perf_counter() - started) * 1000,
            )


class Renders:
    """At most `slots` requests answered at a time (the page renders: DuckDB and templates), the next `queue`
    waiting in arrival order for at most `wait_seconds` each; a request beyond that is refused at once. So
    however many sessions are open, the web view takes a bounded share of the CPU from the nightly run, and an
    admin who would wait learns within seconds that it is busy (503, "try again") rather than after minutes.

    Works across event loops (the test client runs one per client): the queue is guarded by a thread lock, and
    a waiter looks for its turn every few milliseconds."""

    POLL_SECONDS = 0.005

    def __init__(self, slots: int, queue: int, wait_seconds: float):
        self.slots = max(1, slots)
        self.queue = max(0, queue)
        self.wait_seconds = wait_seconds
        self.active = 0
        self.waiting: collections.deque = collections.deque()
        self._lock = threading.Lock()

    async def enter(self) -> bool:
        """True with a slot taken (give it back with `leave`); False: busy."""
        ticket = object()
        with self._lock:
            if not self.waiting and self.active < self.slots:
                self.active += 1
                return True
            if len(self.waiting) >= self.queue:
                return False
            self.waiting.append(ticket)
        deadline = time.monotonic() + self.wait_seconds
        try:
            while True:
                with self._lock:
                    if self.waiting[0] is ticket and self.active < self.slots:
                        self.waiting.popleft()
                        self.active += 1
                        return True
                if time.monotonic() >= deadline:
                    return False
                await anyio.sleep(self.POLL_SECONDS)
        finally:
            with self._lock:
                if ticket in self.waiting:
                    self.waiting.remove(ticket)

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    @contextmanager
    def background(self) -> Iterator[None]:
        """A slot for work no request waits for (a scoped copy rebuilt after a publish), taken from a thread
        only when no request is waiting: so the web view's CPU stays one render at a time, and pages first."""
        while True:
            with self._lock:
                if not self.waiting and self.active < self.slots:
                    self.active += 1
                    break
            time.sleep(self.POLL_SECONDS * 4)
        try:
            yield
        finally:
            self.leave()


class RenderGate:
    """Every request but the stylesheet goes through the server's `Renders`; a refused one gets the busy page
    (503 with Retry-After, in the admin's language), made without the session or the warehouse."""

    def __init__(self, app, renders: Renders):
        self.app = app
        self.renders = renders

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        if not await self.renders.enter():
            await self._busy(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.renders.leave()

    async def _busy(self, scope, receive, send) -> None:
        request = Request(scope)
        lang = _lang(request)
        html = (
            _state(request)
            .templates.env.get_template("error.html")
            .render(
                t=translator(lang),
                lang=lang,
                other_lang="en" if lang == "sv" else "sv",
                title="busy_pages",
                text="busy_pages_text",
                account=None,
                path="/",
                csrf="",
            )
        )
        await HTMLResponse(html, status_code=503, headers={"Retry-After": str(BUSY_RETRY_SECONDS)})(
            scope, receive, send
        )


class Sessions:
    """Starlette's signed-cookie sessions (HttpOnly, SameSite=Lax), with the Secure flag when the request came
    over HTTPS (directly, or through a proxy uvicorn trusts with --forwarded-allow-ips)."""

    def __init__(self, app, secret: str, max_age: int):
        options = {"secret_key": secret, "session_cookie": SESSION_COOKIE, "max_age": max_age, "same_site": "lax"}
        self.plain = SessionMiddleware(app, **options)
        self.secure = SessionMiddleware(app, https_only=True, **options)

    async def __call__(self, scope, receive, send):
        await (self.secure if scope.get("scheme") in ("https", "wss") else self.plain)(scope, receive, send)


def create_app(settings: AppSettings) -> Starlette:
    settings.data_dir = Path(settings.data_dir)
    store = AccountStore(accounts.path_in(settings.data_dir))
    store.get()  # refuses an admins.yaml others may read, before serving anything
    accounts.dummy_hash()  # before the first login, which it would otherwise slow down
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    state = State(
        settings=settings,
        accounts=store,
        access_log=AccessLog(settings.access_log or settings.data_dir / ACCESS_LOG),
        templates=Jinja2Templates(env=env),
        limiter=MovingWindowRateLimiter(MemoryStorage()),
        per_username=parse_limit(settings.failures_per_username),
        per_address=parse_limit(settings.failures_per_address),
        renders=Renders(settings.render_slots, settings.render_queue, settings.render_wait_seconds),
    )
    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/language/{lang}", language),
        Route("/", overview),
        Route("/schools/{school_id}", school),
        Route("/search", search),
        Route("/persons/{id}", person),
        Route("/groups/{id}", group),
        Route("/validation-file", validation_file),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    routes += oidc.routes(store)
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(RenderGate, renders=state.renders),
            Middleware(Sessions, secret=_session_secret(settings), max_age=int(settings.session_hours * 3600)),
        ],
        exception_handlers={HTTPException: http_error, WarehouseBusy: busy, Exception: server_error},
    )
    app.state.skolon = state
    return app
