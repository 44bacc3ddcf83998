"""One night's pull of a source's SS12000 API, written as the drop `<path>/<as_of>/` (CONTRACT §2, pulled drops).

* **Full** pull (the first night, and every `full_every_days`): every page of every entity the reader needs,
  stored as the API sent it (`<entity>/page-00001.json`, ...).
* **Delta** pull (the other nights): only what changed since the last successful pull (`meta.modified.after` its
  start) and the ids in `/deletedEntities` since then; the drop written is the merged, complete one (previous
  drop's records, minus changed and deleted ones, plus the changed ones), so the reader always sees a full
  export. The changes themselves are kept as sent in `_delta/<entity>/page-*.json`, as the audit trail.
* `pull.json` says when, from where (base URL, never a credential), full or delta, counts, pages, retries and
  duration.

Everything is written into a private temporary folder beside the drops (`.pull-<as_of>-<random>`), renamed into
place only when complete: a failed pull leaves nothing behind, and the previous drops are never touched. Pages
stream to disk one at a time; nothing holds the whole registry in memory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import time
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from skolon_pipeline.config import Source
from skolon_pipeline.files import owner_only, private_dir
from skolon_pipeline.pull.policy import ENTITY_TYPES, PullError, PullPolicy

if TYPE_CHECKING:
    from skolon_pipeline.pull.client import Ss12000Client

MANIFEST = "pull.json"
DELTA_DIR = "_delta"  # not an entity folder: the reader never reads it
ENTITIES = tuple(ENTITY_TYPES)
# A night older than this (in days before today) is not pulled on its own: the API only knows today's state, and
# a drop is named by the date it was exported. `--repull` pulls it anyway.
PULL_WINDOW_DAYS = 1


@dataclass(frozen=True)
class PullResult:
    """What a night's pull did: `pulled`, or `exists` (the drop was there) or `skipped` (a past night)."""

    source_id: str
    as_of: dt.date
    status: str
    drop_dir: Path | None = None
    kind: str | None = None  # full | delta
    counts: dict[str, int] = field(default_factory=dict)  # records per entity in the (complete) drop
    pages: dict[str, int] = field(default_factory=dict)  # pages the API sent per entity
    changed: dict[str, int] = field(default_factory=dict)  # delta: records the API sent as changed
    deleted: dict[str, int] = field(default_factory=dict)  # delta: records removed (ids from /deletedEntities)
    retries: int = 0
    requests: int = 0
    duration_seconds: float = 0.0
    base_url: str = ""
    note: str = ""

    def summary(self) -> str:
        """One line for logs and `run`'s summary: counts, never names or credentials."""
        if self.status != "pulled":
            return self.note
        counts = ", ".join(f"{self.counts.get(e, 0)} {e}" for e in ENTITIES)
        delta = ""
        if self.kind == "delta":
            delta = f" ({sum(self.changed.values())} changed, {sum(self.deleted.values())} deleted since the last pull)"
        return (
            f"{self.kind} pull from {self.base_url}: {counts}{delta}; {sum(self.pages.values())} pages, "
            f"{self.retries} retries, {self.duration_seconds:.1f} s"
        )

    def to_json(self) -> dict:
        out = asdict(self)
        out["as_of"] = self.as_of.isoformat()
        out["drop_dir"] = str(self.drop_dir) if self.drop_dir else None
        return out


def public_url(url: str) -> str:
    """The URL without any user-info (the configuration refuses it anyway) or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def read_manifest(drop_dir: Path) -> dict | None:
    try:
        manifest = json.loads((drop_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def previous_pull(root: Path, as_of: dt.date) -> tuple[dt.date, Path, dict] | None:
    """The newest complete pulled drop dated before the night (one with a readable pull.json)."""
    if not root.is_dir():
        return None
    candidates = []
    for child in root.iterdir():
        try:
            date = dt.date.fromisoformat(child.name)
        except ValueError:
            continue
        if child.is_dir() and date < as_of and len(child.name) == 10:
            candidates.append((date, child))
    for date, child in sorted(candidates, reverse=True):
        manifest = read_manifest(child)
        if manifest and manifest.get("started_at") and all(e in manifest.get("counts", {}) for e in ENTITIES):
            return date, child, manifest
    return None


def _page_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("page-*.json") if p.is_file()) if folder.is_dir() else []


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _records(files: list[Path]) -> Iterator[dict]:
    """The records of page files, one page in memory at a time."""
    for path in files:
        document = json.loads(path.read_bytes().decode("utf-8-sig"))
        yield from (document.get("data") or []) if isinstance(document, dict) else document


def _record_id(record) -> str | None:
    value = record.get("id") if isinstance(record, dict) else None
    return str(value).strip().lower() if value is not None else None


def _write_chain(folder: Path, records: Iterator[dict], page_size: int) -> tuple[int, int]:
    """Writes records as a page chain (every page but the last carries a pageToken); returns (records, pages)."""
    private_dir(folder)
    count = pages = 0
    batch: list[dict] = []

    def flush(last: bool) -> None:
        nonlocal pages
        pages += 1
        page = {"data": batch, "pageToken": None if last else f"merged-{pages + 1}"}
        _write(folder / f"page-{pages:05d}.json", json.dumps(page, ensure_ascii=False).encode("utf-8"))

    for record in records:
        if len(batch) == page_size:
            flush(last=False)
            batch = []
        batch.append(record)
        count += 1
    flush(last=True)
    return count, pages


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def pull_source(
    source: Source,
    as_of: dt.date,
    *,
    repull: bool = False,
    today: dt.date | None = None,
    timezone: str = "Europe/Stockholm",
    policy: PullPolicy = PullPolicy(),
    environ: os._Environ | dict | None = None,
    log: Callable[[str], None] | None = None,
) -> PullResult:
    """Pulls the night's drop of an API source (see the module's docstring); raises PullError on failure,
    leaving every existing drop as it was."""
    api = source.api
    if api is None:
        raise ValueError(f"source {source.id!r} has no api block")
    today = today or dt.datetime.now(zoneinfo.ZoneInfo(timezone)).date()
    target = source.root / as_of.isoformat()
    base_url = public_url(api.url)
    if target.exists() and not repull:
        return PullResult(
            source.id,
            as_of,
            "exists",
            target,
            base_url=base_url,
            note=f"drop {target.name} exists; not pulled again (run --repull to pull it again)",
        )
    if as_of > today:
        raise PullError(source.id, f"night {as_of} is in the future (today is {today})")
    if (today - as_of).days > PULL_WINDOW_DAYS and not repull:
        return PullResult(
            source.id,
            as_of,
            "skipped",
            base_url=base_url,
            note=f"night {as_of} is in the past: the API only gives today's registry, so it is not "
            "pulled (the newest drop on or before the night is read; --repull pulls it anyway)",
        )
    env = os.environ if environ is None else environ
    secret = env.get(api.client_secret_env)
    if not secret:
        raise PullError(source.id, f"the environment variable {api.client_secret_env} (client_secret_env) is not set")

    previous = previous_pull(source.root, as_of)
    kind = "full"
    if previous is not None:
        last_full = dt.date.fromisoformat(previous[2].get("last_full") or previous[0].isoformat())
        if (as_of - last_full).days < api.full_every_days:
            kind = "delta"

    started = time.monotonic()
    started_at = _now()
    deadline = started + api.timeout_minutes * 60
    with owner_only():
        private_dir(source.root, owned=False)
        for stale in source.root.glob(f".pull-{as_of.isoformat()}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # a pull that crashed before it could clean up
        tmp = private_dir(source.root / f".pull-{as_of.isoformat()}-{secrets.token_hex(4)}")
        try:
            # Imported here: only a pull needs the HTTP stack (pull/policy.py).
            from skolon_pipeline.pull.client import Ss12000Client

            with Ss12000Client(source.id, api, secret, deadline, policy, log) as client:
                client.fetch_token()
                if kind == "full":
                    counts, pages, changed, deleted = _pull_full(client, tmp)
                else:
                    counts, pages, changed, deleted = _pull_delta(client, tmp, previous, api.page_size)
                retries, requests = client.retries, client.requests
            duration = time.monotonic() - started
            result = PullResult(
                source.id,
                as_of,
                "pulled",
                target,
                kind,
                counts,
                pages,
                changed,
                deleted,
                retries,
                requests,
                round(duration, 3),
                base_url,
            )
            manifest = {
                "source_id": source.id,
                "format": "SS12000 v2.1 API",
                "base_url": base_url,
                "token_url": public_url(api.token_url),
                "as_of": as_of.isoformat(),
                "kind": kind,
                "started_at": started_at.isoformat(),
                "pulled_at": _now().isoformat(),
                "duration_seconds": result.duration_seconds,
                "page_size": api.page_size,
                "counts": counts,
                "pages": pages,
                "retries": retries,
                "requests": requests,
                "last_full": as_of.isoformat()
                if kind == "full"
                else previous[2].get("last_full", previous[0].isoformat()),
            }
            if kind == "delta":
                manifest |= {
                    "since": previous[2]["started_at"],
                    "merged_with": previous[0].isoformat(),
                    "changed": changed,
                    "deleted": deleted,
                }
            _write(tmp / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode("utf-8"))
            _replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return result


def _replace(tmp: Path, target: Path) -> None:
    """Renames the finished folder into place; an existing drop (--repull) is swapped out, then removed."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = target.with_name(f".replaced-{target.name}-{secrets.token_hex(4)}")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _pull_full(client: Ss12000Client, tmp: Path):
    counts: dict[str, int] = {}
    pages: dict[str, int] = {}
    for entity in ENTITIES:
        folder = private_dir(tmp / entity)
        counts[entity] = pages[entity] = 0
        for page in client.entity_pages(entity):
            _write(folder / f"page-{page.number:05d}.json", page.body)
            counts[entity] += len(page.document["data"])
            pages[entity] = page.number
    return counts, pages, {}, {}


def _pull_delta(client: Ss12000Client, tmp: Path, previous: tuple[dt.date, Path, dict], page_size: int):
    _, previous_dir, manifest = previous
    since = manifest["started_at"]
    pages: dict[str, int] = {}
    changed_ids: dict[str, set[str]] = {}
    delta_root = private_dir(tmp / DELTA_DIR)
    for entity in ENTITIES:
        folder = private_dir(delta_root / entity)
        changed_ids[entity] = set()
        pages[entity] = 0
        for page in client.entity_pages(entity, modified_after=since):
            _write(folder / f"page-{page.number:05d}.json", page.body)
            changed_ids[entity].update(i for r in page.document["data"] if (i := _record_id(r)))
            pages[entity] = page.number
    deleted_ids, deleted_pages = client.deleted_ids(since, list(ENTITIES))
    pages["deletedEntities"] = deleted_pages
    counts: dict[str, int] = {}
    deleted: dict[str, int] = {}
    for entity in ENTITIES:
        # A record sent as changed exists now, whatever /deletedEntities said earlier.
        gone = deleted_ids[entity] - changed_ids[entity]
        kept_and_removed = {"removed": 0}

        def merged(entity=entity, gone=gone, tally=kept_and_removed):
            for record in _records(_page_files(previous_dir / entity)):
                rid = _record_id(record)
                if rid in changed_ids[entity]:
                    continue
                if rid in gone:
                    tally["removed"] += 1
                    continue
                yield record
            yield from _records(_page_files(delta_root / entity))

        counts[entity], _ = _write_chain(tmp / entity, merged(), page_size)
        deleted[entity] = kept_and_removed["removed"]
    (tmp / DELTA_DIR / "deletedEntities.json").write_text(
        json.dumps({e: sorted(ids) for e, ids in deleted_ids.items()}) + "\n", encoding="utf-8"
    )
    return counts, pages, {e: len(ids) for e, ids in changed_ids.items()}, deleted


# ── the night's pull status, beside the night's staging files ──────────────────────────────────────────────
PULL_STATUS_SUFFIX = ".pull.json"


def status_file(staging_dir: Path, as_of: dt.date, source_id: str) -> Path:
    return staging_dir / as_of.isoformat() / f"{source_id}{PULL_STATUS_SUFFIX}"


def write_status(
    staging_dir: Path, as_of: dt.date, source_id: str, result: PullResult | None = None, error: str | None = None
) -> None:
    """Records tonight's pull (or its failure) for extract and for `run`'s summary. Never holds a secret."""
    path = status_file(staging_dir, as_of, source_id)
    with owner_only():
        private_dir(path.parent)
        body = (
            {"ok": True, **result.to_json()}
            if result is not None
            else {"ok": False, "source_id": source_id, "message": error}
        )
        _write(path, json.dumps(body).encode("utf-8"))


def read_status(staging_dir: Path, as_of: dt.date, source_id: str) -> dict | None:
    try:
        return json.loads(status_file(staging_dir, as_of, source_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def describe_status(path: Path) -> str:
    """One line of `run`'s summary for a pull status file."""
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "status unreadable"
    if not status.get("ok"):
        problem = str(status.get("message") or "").removeprefix("pull failed: ")
        return f"FAILED ({problem}); its last published roster is carried over"
    fields = {
        k: status.get(k)
        for k in (
            "source_id",
            "status",
            "kind",
            "counts",
            "pages",
            "changed",
            "deleted",
            "retries",
            "requests",
            "duration_seconds",
            "base_url",
            "note",
        )
    }
    result = PullResult(
        as_of=dt.date.fromisoformat(status["as_of"]),
        drop_dir=Path(status["drop_dir"]) if status.get("drop_dir") else None,
        **{k: v for k, v in fields.items() if v is not None},
    )
    return result.summary()
