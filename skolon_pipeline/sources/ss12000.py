"""SS12000 v2.1 JSON drop → canonical staging tables, inside DuckDB.

Each file's records are streamed by DuckDB's JSON array reader (`read_json_objects`, one JSON value per record,
no Python object per record), so a file of any size is read within DuckDB's memory limit: a page object's
`data` array is found from the file's head and tail (its pageToken too), and only those bytes are handed to
DuckDB, as a file of their own (`_SpanFileSystem`; nothing is copied). A file of another shape, or one whose
span DuckDB cannot read as one array, is read whole (`read_text`), as before the stream, which also words the
errors; files are read as many at a time as DuckDB has threads (`_load_raw`); the flattening is `ss12000.sql`
and `ss12000_groups.sql` side by side, then `ss12000_checks.sql` (`_flatten`).
What cannot be read at all (not JSON, not UTF-8, a wrong shape, a record without `id`) raises `SourceError`
naming the source, the file and the problem.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import json
import re
import secrets
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import duckdb
from fsspec.spec import AbstractFileSystem

from skolon_pipeline.bounds import MAX_VALUE, OVERSIZED, OVERSIZED_HEAD
from skolon_pipeline.duck import row_counts
from skolon_pipeline.sources.civic import PseudonymKey, pseudonymise
from skolon_pipeline.sources.drops import SourceError, inside
from skolon_pipeline.sources.enums import normalise_enums
from skolon_pipeline.validate.canonical import CANONICAL_TABLES, complete_staging

# entity → required. `placements` (preschool and after-school care only) is not used for rostering.
ENTITIES: dict[str, bool] = {
    "organisations": True,
    "persons": True,
    "duties": True,
    "groups": True,
    "activities": True,
}

_BOM = "\ufeff"

# A page object's head up to its `data` array's "[" (a BOM, whitespace, maybe the pageToken first) and its tail
# from the array's "]" (maybe the pageToken, then "}"); a plain array's. Looked for in the first and last
# _EDGE_BYTES of a file: a page whose head or tail is of another form (more members, escaped names) is read whole.
_WS = rb"[ \t\r\n]*"
_TOKEN = rb'"pageToken"' + _WS + rb":" + _WS + rb'(null|"(?:[^"\\\x00-\x1f]|\\.)*")' + _WS
_LEAD = rb"\A(?:\xef\xbb\xbf)?" + _WS
_PAGE_HEAD = re.compile(
    _LEAD + rb"\{" + _WS + rb"(?:" + _TOKEN + rb"," + _WS + rb')?"data"' + _WS + rb":" + _WS + rb"\["
)
_PAGE_TAIL = re.compile(rb"\]" + _WS + rb"(?:," + _WS + _TOKEN + rb")?\}" + _WS + rb"\Z")
_ARRAY_HEAD = re.compile(_LEAD + rb"\[")
_ARRAY_TAIL = re.compile(rb"\]" + _WS + rb"\Z")
_EDGE_BYTES = 64 * 1024
_SPAN_PROTOCOL = "skolonspan"
# DuckDB's reader holds buffers of twice its maximum object size (at least 16 MiB) and fails on a record larger
# than a buffer (only a hostile one: MAX_VALUE is 1 MB): that file is then read whole.
_MIN_OBJECT, _MAX_OBJECT = 16 << 20, 64 << 20
# A raw record's id as the reader keys it (lower-cased, trimmed); a record above MAX_VALUE characters gets its id
# after _shrink_large_records has looked at it.
_ID = "nullif(lower(trim(rec->>'id')), '')"
_SMALL_RECORD_ID = f"CASE WHEN length(rec) <= {MAX_VALUE} THEN {_ID} END"
_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


_PAGE_NUMBER = re.compile(r"(\d+)$")


def page_chain(source_id: str, folder: Path) -> list[Path]:
    """The page files of an entity folder in chain order (CONTRACT §2: file-name order; numbered pages by their
    number, so `page-10` follows `page-9` even unpadded). Numbered pages must be numbered without a gap (from 0
    or 1): a missing page is a broken export and fails the source, naming the entity and the page."""
    pages = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file())
    numbers = [_PAGE_NUMBER.search(p.stem) for p in pages]
    if pages and all(numbers):
        by_number = sorted(zip((int(m.group(1)) for m in numbers), pages, strict=True))
        first = by_number[0][0]
        if first > 1:
            raise SourceError(
                source_id,
                folder,
                f"page chain of {folder.name}/ starts at page {first}: "
                f"page {first - 1} and earlier are missing (a broken export)",
            )
        for (n, page), (m, _) in itertools.pairwise(by_number):
            if m == n:
                raise SourceError(source_id, folder, f"page chain of {folder.name}/ has page {n} twice ({page.name})")
            if m != n + 1:
                missing = f"page {n + 1}" if m == n + 2 else f"pages {n + 1}-{m - 1}"
                raise SourceError(
                    source_id,
                    folder,
                    f"page chain of {folder.name}/ is broken: {missing} of "
                    f"{by_number[-1][0]} missing after {page.name} (a broken export)",
                )
        pages = [p for _, p in by_number]
    return pages


def entity_files(source_id: str, drop_dir: Path, entity: str) -> list[Path]:
    """`<entity>.json`, or a folder `<entity>/` of page files (both, if a registry sends both)."""
    files: list[Path] = []
    single = drop_dir / f"{entity}.json"
    if single.is_file():
        files.append(single)
    folder = drop_dir / entity
    if folder.is_dir():
        files.extend(
            inside(source_id, drop_dir, folder / p.name)
            for p in page_chain(source_id, inside(source_id, drop_dir, folder))
        )
    if not files:
        raise SourceError(source_id, drop_dir / f"{entity}.json", f"missing (nor is there a folder {entity}/ of pages)")
    return [inside(source_id, drop_dir, f) for f in files]


def _label(entity: str, path: Path) -> str:
    """How records name their file: `persons.json`, or `persons/page-2.json` for a page of a folder."""
    return path.name if path.parent.name != entity else f"{entity}/{path.name}"


def _truncated(source_id: str, entity: str, path: Path) -> SourceError:
    label = _label(entity, path)
    return SourceError(
        source_id,
        path,
        f"truncated export: the last page of {entity} ({label}) still carries "
        "a pageToken, so pages after it are missing",
    )


def _check_chain_end(con: duckdb.DuckDBPyConnection, source_id: str, entity: str, path: Path) -> None:
    """The last page of a chain (or a lone page object) must not point to a next page: a non-null `pageToken`
    there means the export was cut short, and reading it would publish a roster missing everyone after it.
    For a file read whole (a streamed file's token is read from its tail)."""
    token = con.execute(
        # One parse, keeping only the token (casting the document to JSON would hold all of it: a large
        # one-file groups.json then ran out of memory under a tight memory limit instead of spilling).
        """SELECT CASE WHEN json_type(t) <> 'NULL' THEN t ->> '$' END
           FROM (SELECT json_extract(c, '$.pageToken') AS t
                 FROM (SELECT ltrim(content, ? || ' \t\r\n') AS c FROM read_text(?)) WHERE starts_with(c, '{'))""",
        [_BOM, str(path)],
    ).fetchone()
    if token is not None and token[0] is not None:
        raise _truncated(source_id, entity, path)


def _classify(con: duckdb.DuckDBPyConnection, source_id: str, path: Path) -> str:
    """The file's shape: 'array', 'page' or 'empty'; raises SourceError for anything else.

    Only called when the fast path found no records (or failed), so the whole-file checks cost nothing on a
    normal night."""
    try:
        kind, size = con.execute(
            """
            WITH t AS (SELECT ltrim(content, ?) AS c FROM read_text(?))
            SELECT CASE WHEN NOT json_valid(c) THEN 'invalid'
                        WHEN json_type(c::JSON) = 'ARRAY' THEN 'array'
                        WHEN json_type(c::JSON) = 'OBJECT' AND json_type(c::JSON -> 'data') = 'ARRAY' THEN 'page'
                        ELSE 'other' END,
                   length(c)
            FROM t
            """,
            [_BOM, str(path)],
        ).fetchone()
    except duckdb.Error as exc:
        if "UTF-8" in str(exc):
            raise SourceError(source_id, path, "not valid UTF-8 text") from None
        raise SourceError(source_id, path, f"cannot be read: {exc}") from None
    if kind == "invalid":
        raise SourceError(source_id, path, "empty file, not JSON" if size == 0 else "not valid JSON")
    if kind == "other":
        raise SourceError(
            source_id, path, 'wrong shape: expected a JSON array or a page object {"data": [...], "pageToken": ...}'
        )
    return kind


def _array_span(path: Path) -> tuple[int, int, str | None] | None:
    """Where the file's records are: (first byte, end byte, pageToken) of its plain array or of its page
    object's `data` array, found in the file's head and tail; None when the file is of another form (it is then
    read whole). Only DuckDB's parse of the span tells whether it is an array: the span of a file that is not
    valid JSON fails there."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_EDGE_BYTES)
        f.seek(max(size - _EDGE_BYTES, 0))
        tail = f.read()
    if (array := _ARRAY_HEAD.match(head)) and _ARRAY_TAIL.search(tail):
        return 0, size, None  # DuckDB's reader skips the BOM and whitespace itself
    page, end = _PAGE_HEAD.match(head), _PAGE_TAIL.search(tail)
    if array or page is None or end is None:
        return None
    first, last = page.end() - 1, size - len(tail) + end.start() + 1
    tokens = [t for t in (page.group(1), end.group(1)) if t is not None]
    if last <= first or len(tokens) > 1:  # one span for head and tail, and the pageToken once
        return None
    try:
        return first, last, json.loads(tokens[0]) if tokens else None
    except ValueError:  # a token that is not UTF-8: the whole-file read words the error
        return None


def _max_object_size(con: duckdb.DuckDBPyConnection) -> int:
    """DuckDB's maximum object size for this connection: a sixteenth of its memory limit, within 16-64 MiB."""
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # e.g. '2.7 GiB'
    match = re.fullmatch(r"([\d.]+)\s*(bytes|[KMGT]iB)", limit.strip())
    size = int(float(match.group(1)) * _UNITS[match.group(2)]) if match else _MAX_OBJECT
    return min(max(size // 16, _MIN_OBJECT), _MAX_OBJECT)


class _SpanFile(io.RawIOBase):
    """Bytes [first, last) of a file, read as a file of their own (seekable, so DuckDB reads it in buffers it
    releases; a pipe's buffers DuckDB keeps all of, for a reset)."""

    def __init__(self, path: Path, first: int, last: int):
        super().__init__()
        self._file = open(path, "rb")  # closed with this object
        self._first, self._size, self._pos = first, last - first, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        wanted = max(0, min(len(buffer), self._size - self._pos))
        self._file.seek(self._first + self._pos)
        got = self._file.readinto(memoryview(buffer)[:wanted])
        self._pos += got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


class _SpanFileSystem(AbstractFileSystem):
    """Files `<protocol>://<key>`: spans of drop files, for DuckDB (`spans`: key → (path, first, last); registered
    on the connection's database instance for one extract, `_span_files`). A key is random, so no registry text
    becomes a path (nor a glob: DuckDB globs file names)."""

    protocol = _SPAN_PROTOCOL

    def __init__(self):
        super().__init__(skip_instance_cache=True)
        self.spans: dict[str, tuple[Path, int, int]] = {}

    def _span(self, path: str) -> tuple[Path, int, int]:
        span = self.spans.get(self._strip_protocol(path).strip("/"))
        if span is None:
            raise FileNotFoundError(path)
        return span

    def info(self, path, **kwargs):
        _, first, last = self._span(path)
        return {"name": path, "size": last - first, "type": "file"}

    def ls(self, path, detail=True, **kwargs):
        entry = self.info(path)
        return [entry] if detail else [entry["name"]]

    def glob(self, path, **kwargs):
        return [path] if self.exists(path) else []

    def exists(self, path, **kwargs):
        return self._strip_protocol(path).strip("/") in self.spans

    def _open(self, path, mode="rb", **kwargs):
        return _SpanFile(*self._span(path))


@contextlib.contextmanager
def _span_files(con: duckdb.DuckDBPyConnection):
    """A _SpanFileSystem registered on `con`'s database instance (its cursors see it too) while in the block;
    yields its `spans`."""
    if con.filesystem_is_registered(_SPAN_PROTOCOL):  # left by a read interrupted before its `finally`
        con.unregister_filesystem(_SPAN_PROTOCOL)
    fs = _SpanFileSystem()
    con.register_filesystem(fs)
    try:
        yield fs.spans
    finally:
        con.unregister_filesystem(_SPAN_PROTOCOL)


def _stream(
    con: duckdb.DuckDBPyConnection,
    table: str,
    label: str,
    path: Path,
    first: int,
    last: int,
    spans: dict[str, tuple[Path, int, int]],
) -> int:
    """Inserts the JSON array in bytes [first, last) of `path` into `table`, one row per element in file
    order (`idx` counts from 1, WITH ORDINALITY: a row_number in the reader's order), with DuckDB's streaming
    array reader. Nothing is copied (the drop holds civic numbers) and DuckDB holds a few buffers of the file
    at a time, so a file of any size is read within its memory limit (the table spills). Raises duckdb.Error
    when the span is not a JSON array (or a record is above the maximum object size). `spans`: those of the
    _span_files block the read is in."""
    # json(rec): each record minified, as the whole-file read (json_extract) gives it, so that two copies of a
    # record differing only in layout (an indented page and a compact one) are an exact repeat, not a conflict.
    key = secrets.token_hex(16)
    spans[key] = (path, first, last)
    try:
        return con.execute(
            f"""
            INSERT INTO {table}
            SELECT ?, idx, {_SMALL_RECORD_ID}, json(rec)
            FROM read_json_objects(?, format = 'array', maximum_object_size = ?) WITH ORDINALITY AS r(rec, idx)
            """,
            [label, f"{_SPAN_PROTOCOL}://{key}", _max_object_size(con)],
        ).fetchone()[0]
    finally:
        del spans[key]


def _load_file(
    con: duckdb.DuckDBPyConnection,
    source_id: str,
    entity: str,
    path: Path,
    table: str,
    spans: dict[str, tuple[Path, int, int]],
) -> str | bool | None:
    """Reads one file's records into `table` (`spans` as for _stream); returns the file's pageToken (None for a
    plain array or a null token) when it was read from the file's tail, False when the file was read whole (its
    token is then _check_chain_end's)."""
    label = _label(entity, path)
    token: str | bool | None = False
    inserted = None
    try:
        span = _array_span(path)
    except OSError as exc:
        raise SourceError(source_id, path, f"cannot be read: {exc.strerror or exc}") from None
    if span is not None:
        first, last, token = span
        try:
            inserted = _stream(con, table, label, path, first, last, spans)
        except duckdb.InterruptException:  # another file failed first (_load_raw)
            raise
        except duckdb.Error:  # not an array after all, or a record above the maximum object size: read whole
            token = False
        except OSError as exc:
            raise SourceError(source_id, path, f"cannot be read: {exc.strerror or exc}") from None
    if inserted is None:
        inserted = _load_whole(con, table, label, path)
    if not inserted:
        _classify(con, source_id, path)  # raises unless the file is a valid, empty page or array
        if inserted is None:
            raise SourceError(source_id, path, "cannot be read as JSON records")
    _shrink_large_records(con, table, label)
    bad = con.execute(
        f"""
        SELECT idx, json_type(rec) FROM {table}
        WHERE file = ? AND id IS NULL
        ORDER BY idx LIMIT 1
        """,
        [label],
    ).fetchone()
    if bad is not None:
        idx, json_type = bad
        problem = "is not an object" if json_type != "OBJECT" else "has no 'id' field"
        raise SourceError(source_id, path, f"record {idx} (counting from 1) {problem}")
    return token


def _load_whole(con: duckdb.DuckDBPyConnection, table: str, label: str, path: Path) -> int | None:
    """The file read whole and split into one JSON value per record (a page's `data`, or the elements of a
    plain array) by one json_extract; None when it cannot be. For files the stream does not read: this holds
    several times the file in memory."""
    try:
        return con.execute(
            f"""
            INSERT INTO {table}
            SELECT file, idx, {_SMALL_RECORD_ID}, rec FROM (
            SELECT ? AS file, generate_subscripts(recs, 1) AS idx, unnest(recs) AS rec FROM (
                SELECT CASE WHEN starts_with(c, '[') THEN json_extract(c, '$[*]')
                            ELSE json_extract(c, '$.data[*]') END AS recs
                FROM (SELECT ltrim(content, ? || ' \t\r\n') AS c FROM read_text(?))))
            """,
            [label, _BOM, str(path)],
        ).fetchone()[0]
    except duckdb.InterruptException:
        raise
    except duckdb.Error:
        return None


def _shrink(value):
    """`value` (parsed JSON) with every string above MAX_VALUE characters replaced by OVERSIZED, its length and
    its first characters (validation makes the record that owns it INVALID_RECORD); True as second item when
    anything changed."""
    changed = False
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, item in list(items):
            if isinstance(key, str) and len(key) > MAX_VALUE:  # no field the roster reads has such a name
                del node[key]
                changed = True
            elif isinstance(item, str) and len(item) > MAX_VALUE:
                node[key] = f"{OVERSIZED}{len(item)}:{item[:OVERSIZED_HEAD]}"
                changed = True
            elif isinstance(item, dict | list):
                stack.append(item)
    return value, changed


def _shrink_large_records(con: duckdb.DuckDBPyConnection, table: str, label: str) -> None:
    """Records above MAX_VALUE characters (rare: a huge group, or a hostile value) are looked at one by one,
    after the file's parse has released its memory: a value above MAX_VALUE is replaced (`_shrink`), so that
    every later step handles small records only, whatever a registry sends."""
    large = con.execute(
        f"SELECT idx FROM {table} WHERE file = ? AND length(rec) > ? ORDER BY idx", [label, MAX_VALUE]
    ).fetchall()
    for (idx,) in large:
        (text,) = con.execute(f"SELECT rec::VARCHAR FROM {table} WHERE file = ? AND idx = ?", [label, idx]).fetchone()
        shrunk, changed = _shrink(json.loads(text))
        del text
        if changed:
            con.execute(
                f"UPDATE {table} SET rec = ?::JSON WHERE file = ? AND idx = ?",
                [json.dumps(shrunk, ensure_ascii=False), label, idx],
            )
        del shrunk
        con.execute(f"UPDATE {table} SET id = {_ID} WHERE file = ? AND idx = ?", [label, idx])


# The raw records, in memory only (an ATTACHed in-memory database, which spills as temporary tables do): unlike
# TEMP tables, _load_raw's cursors see it.
_RAW_DB = "skolon_raw"


def _load_raw(con: duckdb.DuckDBPyConnection, source_id: str, files_by_entity: dict[str, list[Path]]) -> None:
    """Loads every file into `_RAW_DB`.raw_<entity>, with as many workers as DuckDB has threads (each a cursor:
    DuckDB reads one file with one thread, so files read one after another used one core); each file's rows are
    its own (file, idx), so the tables are as a sequential load makes them. The first failing step in the
    sequential order (files in entity and chain order, the chain end after an entity's last file) raises, as it
    did sequentially: files are handed out in that order, a failure stops handing out later ones and interrupts
    a later one being read, and the failure earliest in the order wins."""
    steps = [
        (entity, path, n == len(files) - 1) for entity, files in files_by_entity.items() for n, path in enumerate(files)
    ]
    (threads,) = con.execute("SELECT current_setting('threads')").fetchone()
    lock, handed_out, failed = threading.Lock(), iter(range(len(steps))), {}
    cursors = [con.cursor() for _ in range(max(1, min(int(threads), len(steps))))]
    current = dict.fromkeys(range(len(cursors)))

    def work(n: int, spans: dict[str, tuple[Path, int, int]]) -> None:
        cur = cursors[n]
        while True:
            with lock:
                i = current[n] = next(handed_out, None)
                if i is None or (failed and i > min(failed)):
                    return
            entity, path, last = steps[i]
            try:
                token = _load_file(cur, source_id, entity, path, f"{_RAW_DB}.raw_{entity}", spans)
                if last and token is False:
                    _check_chain_end(cur, source_id, entity, path)
                elif last and token is not None:
                    raise _truncated(source_id, entity, path)
            except Exception as exc:
                with lock:
                    failed[i] = exc
                    for m, j in current.items():
                        if m != n and j is not None and j > i:
                            cursors[m].interrupt()
                return

    try:
        with _span_files(con) as spans:
            workers = [threading.Thread(target=work, args=(n, spans)) for n in range(len(cursors))]
            try:
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
            except BaseException:  # e.g. KeyboardInterrupt: the workers stop before their cursors close
                with lock:
                    failed[-1] = None
                for cur in cursors:
                    cur.interrupt()
                for worker in workers:
                    worker.join()
                raise
    finally:
        for cur in cursors:
            cur.close()
    if failed:
        raise failed[min(failed)]


def _script(name: str) -> str:
    return resources.files("skolon_pipeline.sources").joinpath(name).read_text(encoding="utf-8")


def _flatten(con: duckdb.DuckDBPyConnection, source_id: str, school_email_domains: list[str]) -> None:
    """Flattens the raw records into the staging tables: ss12000_groups.sql on a second connection (a cursor, in
    a thread) while `con` runs ss12000.sql, then ss12000_checks.sql on `con`. A statement over the 51 000 group
    records (one DuckDB row group) runs on one thread, as do most of the persons' (200 000 records, two row
    groups); side by side they use both cores. Both write tables of their own; the groups' parsed records are
    in `_RAW_DB`, which every connection of the database sees (temporary tables and macros are a connection's)."""

    def session(c: duckdb.DuckDBPyConnection) -> None:
        c.execute("SET VARIABLE source_id = ?", [source_id])
        c.execute("SET VARIABLE school_email_domains = ?::VARCHAR[]", [school_email_domains])
        for entity in ENTITIES:
            c.execute(f"CREATE OR REPLACE TEMP VIEW raw_{entity} AS FROM {_RAW_DB}.raw_{entity}")
        c.execute(_script("ss12000_macros.sql"))

    session(con)
    failed: list[BaseException] = []
    with contextlib.closing(con.cursor()) as groups_con:
        session(groups_con)

        def groups() -> None:
            try:
                groups_con.execute(_script("ss12000_groups.sql"))
            except BaseException as exc:  # raised in the calling thread below
                failed.append(exc)

        worker = threading.Thread(target=groups, name="ss12000-groups", daemon=True)
        worker.start()
        try:
            con.execute(_script("ss12000.sql"))
        except BaseException:
            groups_con.interrupt()  # nothing of this extract is kept: the groups need not finish
            raise
        finally:
            worker.join()
    if failed:
        raise failed[0]
    con.execute(_script("ss12000_checks.sql"))


def extract_ss12000(
    con: duckdb.DuckDBPyConnection,
    source_id: str,
    drop_dir: Path,
    *,
    key: PseudonymKey,
    school_email_domains: Sequence[str] = (),
    night: dt.date | None = None,
) -> dict[str, int]:
    """Reads one drop into `con` (the source's staging database) and returns the canonical tables' row counts.

    The records as sent (`raw_<entity>`, with civic numbers, addresses, phone numbers ...) are in memory only
    (`_RAW_DB`): they never reach the staging file. `school_email_domains` decides which e-mail addresses are
    kept; civic numbers are hashed with `key` (civic.pseudonym_key), 10-digit ones read as of `night`.
    """
    files_by_entity = {entity: entity_files(source_id, drop_dir, entity) for entity in ENTITIES}
    con.execute(f"DETACH DATABASE IF EXISTS {_RAW_DB}")  # left by an interrupted extract
    con.execute(f"ATTACH ? AS {_RAW_DB}", [":memory:"])
    try:
        for entity in ENTITIES:
            con.execute(f"CREATE TABLE {_RAW_DB}.raw_{entity} (file VARCHAR, idx BIGINT, id VARCHAR, rec JSON)")
        _load_raw(con, source_id, files_by_entity)
        _flatten(con, source_id, [d.lower() for d in school_email_domains])
    finally:
        for entity in ENTITIES:
            con.execute(f"DROP VIEW IF EXISTS raw_{entity}")
        con.execute(f"DETACH DATABASE {_RAW_DB}")
    normalise_enums(con, source_id)
    pseudonymise(con, source_id, night or dt.date.today(), key)
    complete_staging(con)
    return row_counts(con, CANONICAL_TABLES)
