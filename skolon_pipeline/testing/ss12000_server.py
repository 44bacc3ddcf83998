"""A local SS12000 v2.1 API server (Starlette, served by uvicorn on 127.0.0.1) for tests, the demo and the benchmark.

It serves a registry's records through the v2.1 endpoints the pipeline pulls (`/organisations`, `/persons`,
`/duties`, `/groups`, `/activities`, `/deletedEntities`) the way the spec says: OAuth2 client-credentials
tokens from `/token` (`client_secret_post` or `client_secret_basic`), `limit` and an opaque `pageToken` that
cannot be combined with other filters (400, as the spec's 400 answer says), `meta.modified.after`, and
`/deletedEntities?after=...&entities=...`. Tests change the registry between pulls (`upsert`, `delete`) and
inject faults (`Fault`): 429 with Retry-After, 5xx, a slow page, a token revoked mid-pull, a page that is not
JSON, a connection dropped half-way through a page, any other status.

Records keep the JSON they were loaded with; the server's own clock decides what `meta.modified.after` returns
(everything loaded counts as modified when the server started; `upsert` stamps the record's `meta.modified`).

    python -m skolon_pipeline.testing.ss12000_server DROP_DIR [--port 0]   # prints the URL it listens on
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from skolon_pipeline.testing.drops import SS12000_ENTITIES as ENTITIES
from skolon_pipeline.testing.drops import read_ss12000 as read_drop  # a file drop, as `load_drop` serves it

# /deletedEntities: the entity types (EndPointsEnum) and the keys of the answer (the 2.1 spec's spelling).
ENTITY_TYPES = {
    "organisations": "Organisation",
    "persons": "Person",
    "duties": "Duty",
    "groups": "Group",
    "activities": "Activity",
}
DELETED_KEYS = {
    "organisations": "organisations",
    "persons": "persons",
    "duties": "duties",
    "groups": "groups",
    "activities": "activitites",
}
_FILTERS_WITH_TOKEN_ALLOWED = {"pageToken", "limit"}
DEFAULT_LIMIT = 1000


@dataclass
class Fault:
    """Something going wrong on a request: `kind` is one of 429, 500, 503, slow, expire_token, not_json, drop,
    status. `path` is an entity, `deletedEntities` or `token`; `page` 1, 2, ... (None: any page); fires `times`
    times (None: every time)."""

    kind: str
    path: str = "persons"
    page: int | None = 1
    times: int | None = 1
    retry_after: str | None = None  # 429/503: the Retry-After header's value
    delay: float = 0.0  # slow: seconds before answering
    status: int = 403  # status: the status answered
    fired: int = 0

    def matches(self, path: str, page: int) -> bool:
        live = self.times is None or self.fired < self.times
        return live and self.path == path and (self.page is None or self.page == page)


@dataclass
class _Record:
    id: str
    body: bytes
    modified: dt.datetime


@dataclass
class _Cursor:
    path: str
    keys: list  # record ids (entities) or (entity, id) pairs (deletedEntities), fixed on the first page
    offset: int
    page: int


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _timestamp(value: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@dataclass
class Registry:
    """The server's data and behaviour; safe to change from a test's thread while the server runs."""

    client_id: str = "skolon-test"
    client_secret: str = "test-secret"
    auth_method: str = "any"  # client_secret_post | client_secret_basic | any
    token_lifetime: int = 3600  # seconds
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)  # (path, query) per request
    tokens_issued: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, _Record]] = {e: {} for e in ENTITIES}
        self._deleted: list[tuple[str, str, dt.datetime]] = []
        self._tokens: dict[str, float] = {}
        self._cursors: dict[str, _Cursor] = {}

    # ── data ───────────────────────────────────────────────────────────────────────────────────────────
    def load(self, records: dict[str, list[dict]], modified: dt.datetime | None = None) -> Registry:
        """Adds records as they are, repeated ids included (a registry's defects are served, not mended)."""
        when = modified or _now()
        with self._lock:
            for entity, items in records.items():
                for record in items:
                    rid = str(record["id"])
                    key = rid if rid not in self._records[entity] else f"{rid}#{len(self._records[entity])}"
                    self._records[entity][key] = _Record(rid, _encode(record), when)
        return self

    def load_drop(self, drop_dir: Path) -> Registry:
        return self.load(read_drop(Path(drop_dir)))

    def upsert(self, entity: str, record: dict) -> None:
        """A record created or changed now: its meta.modified is stamped, and a delta pull returns it."""
        when = _now()
        record = {
            **record,
            "meta": {**(record.get("meta") or {"created": when.isoformat()}), "modified": when.isoformat()},
        }
        with self._lock:
            self._drop(entity, str(record["id"]))
            self._records[entity][str(record["id"])] = _Record(str(record["id"]), _encode(record), when)

    def delete(self, entity: str, record_id: str) -> None:
        with self._lock:
            self._drop(entity, record_id)
            self._deleted.append((entity, record_id, _now()))

    def _drop(self, entity: str, record_id: str) -> None:
        for key in [k for k, r in self._records[entity].items() if r.id == record_id]:
            del self._records[entity][key]

    def records(self, entity: str) -> list[dict]:
        with self._lock:
            return [json.loads(r.body) for r in self._records[entity].values()]

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    # ── faults ─────────────────────────────────────────────────────────────────────────────────────────
    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def _fault(self, path: str, page: int) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(path, page):
                    fault.fired += 1
                    return fault
        return None

    # ── tokens ─────────────────────────────────────────────────────────────────────────────────────────
    def _issue(self) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime
            self.tokens_issued += 1
        return token

    def _valid(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            expires = self._tokens.get(token) if scheme.lower() == "bearer" else None
        return expires is not None and expires > time.monotonic()

    def _credentials_ok(self, request: Request, form: dict[str, str]) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic" and self.auth_method in ("client_secret_basic", "any"):
            try:
                client_id, _, secret = base64.b64decode(value).decode("utf-8").partition(":")
            except ValueError:
                return False
            return client_id == self.client_id and secrets.compare_digest(secret, self.client_secret)
        if "client_secret" in form and self.auth_method in ("client_secret_post", "any"):
            return form.get("client_id") == self.client_id and secrets.compare_digest(
                form["client_secret"], self.client_secret
            )
        return False

    # ── pages ──────────────────────────────────────────────────────────────────────────────────────────
    def _first_cursor(self, path: str, query: dict[str, list[str]]) -> _Cursor | None:
        with self._lock:
            if path == "deletedEntities":
                after = _timestamp(query["after"][0]) if "after" in query else None
                wanted = {e for e, t in ENTITY_TYPES.items() if not query.get("entities") or t in query["entities"]}
                keys = [(e, i) for e, i, when in self._deleted if e in wanted and (after is None or when > after)]
            else:
                after = _timestamp(query["meta.modified.after"][0]) if "meta.modified.after" in query else None
                keys = [k for k, r in self._records[path].items() if after is None or r.modified > after]
        return _Cursor(path, keys, 0, 1)

    def _page(self, cursor: _Cursor, limit: int) -> bytes:
        chunk = cursor.keys[cursor.offset : cursor.offset + limit]
        following = cursor.offset + limit < len(cursor.keys)
        token = None
        if following:
            token = secrets.token_urlsafe(12)
            with self._lock:
                self._cursors[token] = _Cursor(cursor.path, cursor.keys, cursor.offset + limit, cursor.page + 1)
        if cursor.path == "deletedEntities":
            data: dict[str, list[str]] = {}
            for entity, rid in chunk:
                data.setdefault(DELETED_KEYS[entity], []).append(rid)
            return json.dumps({"data": data, "pageToken": token}).encode("utf-8")
        with self._lock:
            bodies = [r.body for key in chunk if (r := self._records[cursor.path].get(key)) is not None]
        return b'{"data":[' + b",".join(bodies) + b'],"pageToken":' + json.dumps(token).encode() + b"}"


def _encode(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


class _DroppedResponse(Response):
    """Starts a page, sends half of it and breaks off: the client sees the connection dropped mid-answer."""

    def __init__(self, body: bytes):
        super().__init__(body, media_type="application/json")

    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
        raise ConnectionAbortedError("fault injected: connection dropped")


def build_app(registry: Registry) -> Starlette:
    async def token(request: Request) -> Response:
        fault = registry._fault("token", 1)
        if fault is not None and (answer := await _apply(fault, b"")) is not None:
            return answer
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if not registry._credentials_ok(request, form):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse(
            {"access_token": registry._issue(), "token_type": "Bearer", "expires_in": registry.token_lifetime}
        )

    async def listing(request: Request) -> Response:
        path = request.url.path.strip("/").split("/")[-1]
        query_items = list(request.query_params.multi_items())
        with registry._lock:
            registry.requests.append((path, query_items))
        query: dict[str, list[str]] = {}
        for key, value in query_items:
            query.setdefault(key, []).append(value)
        try:
            limit = int(query.get("limit", [DEFAULT_LIMIT])[0])
            if limit < 1:
                raise ValueError
        except ValueError:
            return _error(400, "BAD_LIMIT", "limit must be a positive integer")
        if "pageToken" in query:
            if set(query) - _FILTERS_WITH_TOKEN_ALLOWED:
                return _error(400, "TOKEN_WITH_FILTER", "pageToken cannot be combined with other filters")
            with registry._lock:
                cursor = registry._cursors.get(query["pageToken"][0])
            if cursor is None or cursor.path != path:
                return _error(400, "BAD_PAGE_TOKEN", "unknown pageToken")
        else:
            try:
                cursor = registry._first_cursor(path, query)
            except ValueError:
                return _error(400, "BAD_TIMESTAMP", "not an RFC 3339 timestamp")
        if not registry._valid(request):
            return _error(401, "UNAUTHORIZED", "missing, expired or unknown access token")
        fault = registry._fault(path, cursor.page)
        if fault is not None and fault.kind == "expire_token":
            registry.revoke_tokens()  # revoked just before this request arrived
            return _error(401, "UNAUTHORIZED", "missing, expired or unknown access token")
        body = registry._page(cursor, limit)
        if fault is not None and (answer := await _apply(fault, body)) is not None:
            return answer
        return Response(body, media_type="application/json")

    routes = [
        Route("/token", token, methods=["POST"]),
        *(Route(f"/{p}", listing, methods=["GET"]) for p in (*ENTITIES, "deletedEntities")),
    ]
    return Starlette(routes=routes)


async def _apply(fault: Fault, body: bytes) -> Response | None:
    """The faulty answer, or None when the fault only delays or revokes and the normal answer follows."""
    if fault.kind in ("429", "503"):
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        return (
            _error(int(fault.kind), "SLOW_DOWN", "try again later")
            if not headers
            else JSONResponse(
                {"code": "SLOW_DOWN", "message": "try again later"}, status_code=int(fault.kind), headers=headers
            )
        )
    if fault.kind == "500":
        return Response("Internal Server Error", status_code=500, media_type="text/plain")
    if fault.kind == "status":
        return _error(fault.status, "REFUSED", f"fault injected: {fault.status}")
    if fault.kind == "not_json":
        return Response("<html><body>Gateway says hello</body></html>", media_type="text/html")
    if fault.kind == "drop":
        return _DroppedResponse(body)
    if fault.kind == "slow":
        await asyncio.sleep(fault.delay)
        return None
    if fault.kind == "expire_token":
        return None
    raise ValueError(f"unknown fault {fault.kind!r}")


@contextlib.contextmanager
def serving(registry: Registry, port: int = 0, **ssl) -> Iterator[str]:
    """Serves the registry on 127.0.0.1 (port 0: an ephemeral port) in a thread; yields its base URL and stops
    it on exit. `ssl` takes uvicorn's ssl_certfile, ssl_keyfile, ssl_ca_certs, ssl_cert_reqs."""
    import uvicorn

    config = uvicorn.Config(
        build_app(registry), host="127.0.0.1", port=port, log_level="critical", access_log=False, lifespan="off", **ssl
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ss12000-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the SS12000 test server did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    scheme = "https" if ssl.get("ssl_certfile") else "http"
    try:
        yield f"{scheme}://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


DEMO_SECRET_ENV = "SKOLON_DEMO_CLIENT_SECRET"


def serve_demo(data_dir: Path, drop: Path, port: int = 0, night: dt.date | None = None) -> None:
    """`skolon-pipeline demo --serve`: serves the demo drop on 127.0.0.1 and rewrites sources.yaml so that the
    demo source is pulled from it (into registries/lindby-pulled/). Runs until interrupted."""
    import yaml

    secret = os.environ.get(DEMO_SECRET_ENV) or secrets.token_urlsafe(18)
    registry = Registry(client_id="skolon-demo", client_secret=secret).load_drop(drop)
    sources_file = Path(data_dir) / "sources.yaml"
    with serving(registry, port) as url:
        config = yaml.safe_load(sources_file.read_text(encoding="utf-8"))
        config["sources"][0] |= {
            "path": "registries/lindby-pulled",
            "api": {
                "url": url,
                "token_url": f"{url}/token",
                "client_id": "skolon-demo",
                "client_secret_env": DEMO_SECRET_ENV,
                "page_size": 100,
            },
        }
        sources_file.write_text(
            "# The demo installation, pulled from the local SS12000 test server "
            "(skolon-pipeline demo --serve).\n" + yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
            encoding="utf-8",
        )
        print(
            f"SS12000 API of the demo registry on {url} (token endpoint {url}/token); {sources_file} now pulls "
            "source lindby from it."
        )
        print("In another terminal (Ctrl-C here stops the server):")
        print(
            f"  export {DEMO_SECRET_ENV}={secret}"
            if DEMO_SECRET_ENV not in os.environ
            else f"  export {DEMO_SECRET_ENV}=<the value you set>"
        )
        night = night or dt.date.fromisoformat(drop.name) + dt.timedelta(days=1)
        # --repull: the demo's night lies in the past, which is pulled only when asked for.
        print(f"  skolon-pipeline run --data-dir {data_dir} --as-of {night} --repull")
        sys.stdout.flush()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("drop_dir", type=Path, help="an SS12000 file drop to serve")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--client-id", default="skolon-test")
    parser.add_argument(
        "--client-secret-env",
        default="SS12000_TEST_SERVER_SECRET",
        help="the variable holding the client secret the server accepts",
    )
    args = parser.parse_args(argv)
    secret = os.environ.get(args.client_secret_env)
    if not secret:
        print(f"error: set {args.client_secret_env} to the client secret to accept", file=sys.stderr)
        return 2
    registry = Registry(client_id=args.client_id, client_secret=secret).load_drop(args.drop_dir)
    with serving(registry, args.port) as url:
        print(f"SS12000 test server on {url} (token endpoint {url}/token)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
