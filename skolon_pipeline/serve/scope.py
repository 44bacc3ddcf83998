"""An admin's scope as a warehouse of its own: the only way the web view reads data.

`connect(warehouse, scope)` returns an in-memory DuckDB connection on which the warehouse file is attached
read-only as `wh`, and on which `history.*`, `nightly.nights`, `roster.*` and `diagnostics.*` are rebuilt as
views that hold **only the admin's scope**:

* the base tables that hold personal data (`history.schools`, `users`, `groups`, ...) are views over
  `wh.history.*` semi-joined, in SQL, to the scope's keys (schools, groups, people), built from the account's
  authority or school codes/ids, which reach DuckDB as parameters only;
* every view and table macro of the warehouse (`roster.*`, `diagnostics.school_counts`, `nightly.*`,
  `history.users_as_of(d)`, ...) is re-created from its own definition, so it reads the scoped tables.

So the code that answers pages is the code the CLI runs (`explain`, `school_counts.sql`, the validation
file's `sheets.sql`), unchanged, and it cannot read past the scope: the unscoped rows are reachable only as
`wh.*`, which none of it names, and a warehouse table this module does not know (a new one, or
`history.held_changes`) does not exist on the connection at all (a query naming it fails; it never leaks).

Who belongs to a scope (documented in docs/school-admin.md):
* schools: an authority admin's are the school units whose `organisation_id` is the authority; a school
  admin's are the units whose id or school unit code they were given;
* groups: of those schools (synced or held back);
* people: affiliated with those schools, members of those groups, or named by a held-back record of them;
* held-back records without a school (no school link, an unknown school unit): only an authority admin sees
  them, for the sources whose every school unit is in the authority (as the validation file files them);
* changes (`history.changes`): of those schools, groups, people, memberships of those groups and
  affiliations with those schools. Civic number hashes are not on the connection at all.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from skolon_pipeline import duck, explain
from skolon_pipeline.exports.people import show_people
from skolon_pipeline.publish import warehouse

SCHEMAS = ("history", "nightly", "roster", "diagnostics")
# The columns pages look one person, group or record up by (explain's finder, the Person and Grupp pages): an
# ART index each on the copy, so a look-up reads a few rows instead of every membership of the scope.
_INDEXES = {
    ("main", "search_people"): ("person_id",),
    ("main", "users"): ("user_id",),
    ("main", "memberships"): ("user_id", "group_id"),
    ("main", "school_affiliations"): ("user_id",),
    ("main", "exclusions"): ("record_id", "person_id", "group_id"),
    ("main", "warnings"): ("record_id",),
    ("history", "users"): ("user_id",),
    ("history", "excluded_persons"): ("person_id",),
}
# Copies built in the background (after a publish) one at a time, whatever the number of scopes: 50 scopes
# catching up with a night do not take 50 threads' worth of CPU from the next run. The web view passes its
# render slots instead (app.Renders.background), so that rebuilds and pages together render one at a time.
_BACKGROUND_BUILDS = threading.BoundedSemaphore(1)


@dataclass(frozen=True)
class Scope:
    """What one admin may see: every school of one school authority, or some school units."""

    authority: str | None = None  # organisation id of the school authority (Huvudman)
    schools: tuple[str, ...] = ()  # school unit codes or school ids

    def __post_init__(self):
        if (self.authority is None) == (not self.schools):
            raise ValueError("a scope is either one school authority or one or more schools")

    def describe(self) -> str:
        return f"authority {self.authority}" if self.authority else "school " + ", ".join(self.schools)


# base table → the rows of wh.history.<table> (alias h) that the scope may see
_SCOPED: dict[str, str] = {
    "schools": "EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.school_id)",
    "school_affiliations": "EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.school_id)",
    "groups": "EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.school_id)",
    "excluded_groups": "EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.school_id)",
    "memberships": "EXISTS (SELECT 1 FROM _scope.groups g WHERE g.source_id = h.source_id AND g.group_id = h.group_id)",
    "exclusions": "EXISTS (SELECT 1 FROM _scope.records r WHERE r.source_id = h.source_id AND r.entity_type = h.entity_type AND r.record_id = h.record_id)",
    "users": "EXISTS (SELECT 1 FROM _scope.people p WHERE p.source_id = h.source_id AND p.person_id = h.user_id)",
    "excluded_persons": "EXISTS (SELECT 1 FROM _scope.people p WHERE p.source_id = h.source_id AND p.person_id = h.person_id)",
    "warnings": """CASE h.entity_type
        WHEN 'person' THEN EXISTS (SELECT 1 FROM _scope.people p WHERE p.source_id = h.source_id AND p.person_id = h.record_id)
        WHEN 'group' THEN EXISTS (SELECT 1 FROM _scope.groups g WHERE g.source_id = h.source_id AND g.group_id = h.record_id)
        WHEN 'school' THEN EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.record_id)
        WHEN 'membership' THEN EXISTS (SELECT 1 FROM _scope.records r WHERE r.source_id = h.source_id AND r.entity_type = 'membership' AND r.record_id = h.record_id)
        -- a source's or a file's problems (a failed or stale drop, a CSV quirk): no personal data
        ELSE EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id) END""",
    # the drop each source was read from: no personal data, for the sources of the scope's schools
    "source_drops": "EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id)",
    "changes": """CASE h.entity_type
        WHEN 'user' THEN EXISTS (SELECT 1 FROM _scope.people p WHERE p.source_id = h.source_id AND p.person_id = h.entity_id)
        WHEN 'school' THEN EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.entity_id)
        WHEN 'group' THEN EXISTS (SELECT 1 FROM _scope.groups g WHERE g.source_id = h.source_id AND g.group_id = h.entity_id)
        WHEN 'membership' THEN EXISTS (SELECT 1 FROM _scope.memberships m WHERE m.source_id = h.source_id AND m.record_id = h.entity_id)
        WHEN 'school_affiliation' THEN EXISTS (SELECT 1 FROM _scope.affiliations a WHERE a.source_id = h.source_id AND a.record_id = h.entity_id)
        ELSE false END""",
}
# Columns the web view never needs: not on the connection at all.
_BLANKED = {"users": "NULL::VARCHAR AS civic_no_hash"}
# Tables without personal data, passed through whole.
_PASSED = {("nightly", "nights")}


def _keys(con: duckdb.DuckDBPyConnection, scope: Scope) -> None:
    """The scope's keys as temp tables, from the account's values as parameters."""
    ids = [s.strip().lower() for s in scope.schools]
    codes = [s.strip() for s in scope.schools]
    con.execute(
        """CREATE TABLE _scope.schools AS
           SELECT DISTINCT source_id, school_id FROM wh.history.schools
           WHERE organisation_id = $authority OR list_contains($ids, school_id) OR list_contains($codes, school_unit_code)""",
        {"authority": scope.authority, "ids": ids, "codes": codes},
    )
    # Records without a school belong to their source's authority when the source has only that one.
    con.execute(
        """CREATE TABLE _scope.sources AS
           SELECT source_id FROM wh.history.schools WHERE $authority IS NOT NULL GROUP BY source_id
           HAVING bool_and(organisation_id IS NOT DISTINCT FROM $authority)""",
        {"authority": scope.authority},
    )
    con.execute(
        """CREATE TABLE _scope.groups AS
           SELECT source_id, group_id FROM wh.history.groups h WHERE EXISTS (
               SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.school_id)
           UNION
           SELECT source_id, group_id FROM wh.history.excluded_groups h WHERE EXISTS (
               SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.school_id)"""
    )
    con.execute(
        """CREATE TABLE _scope.records AS
           SELECT DISTINCT source_id, entity_type, record_id, person_id FROM wh.history.exclusions h
           WHERE EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.school_id)
              OR (h.group_id IS NOT NULL
                  AND EXISTS (SELECT 1 FROM _scope.groups g WHERE g.source_id = h.source_id AND g.group_id = h.group_id))
              OR (h.school_id IS NULL AND h.source_id IN (SELECT source_id FROM _scope.sources))"""
    )
    con.execute(
        """CREATE TABLE _scope.people AS
           SELECT source_id, user_id AS person_id FROM wh.history.school_affiliations h
           WHERE EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.school_id)
           UNION
           SELECT source_id, user_id FROM wh.history.memberships h
           WHERE EXISTS (SELECT 1 FROM _scope.groups g WHERE g.source_id = h.source_id AND g.group_id = h.group_id)
           UNION
           SELECT source_id, person_id FROM _scope.records WHERE person_id IS NOT NULL
           UNION
           SELECT source_id, person_id FROM wh.history.excluded_persons h
           WHERE EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.school_id)
              OR (h.school_id IS NULL AND h.source_id IN (SELECT source_id FROM _scope.sources))"""
    )
    # history.changes names a membership `<group_id>/<user_id>` and an affiliation `<user_id>/<school_id>`.
    con.execute(
        """CREATE TABLE _scope.memberships AS
           SELECT DISTINCT source_id, group_id || '/' || user_id AS record_id FROM wh.history.memberships h
           WHERE EXISTS (SELECT 1 FROM _scope.groups g WHERE g.source_id = h.source_id AND g.group_id = h.group_id)
           UNION SELECT source_id, record_id FROM _scope.records WHERE entity_type = 'membership'"""
    )
    con.execute(
        """CREATE TABLE _scope.affiliations AS
           SELECT DISTINCT source_id, user_id || '/' || school_id AS record_id FROM wh.history.school_affiliations h
           WHERE EXISTS (SELECT 1 FROM _scope.schools s WHERE s.source_id = h.source_id AND s.school_id = h.school_id)"""
    )


def _rebuild_catalog(con: duckdb.DuckDBPyConnection) -> None:
    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA {schema}")
    tables = con.execute(
        """SELECT schema_name, table_name FROM duckdb_tables()
           WHERE database_name = 'wh' AND list_contains(?, schema_name) ORDER BY ALL""",
        [list(SCHEMAS)],
    ).fetchall()
    for schema, table in tables:
        # identifiers from the warehouse's own catalog, not from registry data
        if (schema, table) in _PASSED:
            con.execute(f'CREATE TABLE {schema}."{table}" AS SELECT * FROM wh.{schema}."{table}"')
        elif schema == "history" and table in _SCOPED:
            replace = f" REPLACE ({_BLANKED[table]})" if table in _BLANKED else ""
            con.execute(
                f'CREATE TABLE history."{table}" AS SELECT *{replace} FROM wh.history."{table}" h WHERE {_SCOPED[table]}'
            )
        # any other table is left out: whatever names it fails instead of reading unscoped rows
    views = con.execute(
        """SELECT sql FROM duckdb_views() WHERE database_name = 'wh' AND NOT internal AND NOT temporary
           AND list_contains(?, schema_name)""",
        [list(SCHEMAS)],
    ).fetchall()
    macros = con.execute(
        """SELECT schema_name, function_name, parameters, function_type, macro_definition FROM duckdb_functions()
           WHERE database_name = 'wh' AND function_type IN ('table_macro', 'macro') AND list_contains(?, schema_name)""",
        [list(SCHEMAS)],
    ).fetchall()
    for schema, name, params, kind, definition in macros:
        table = " TABLE" if kind == "table_macro" else ""
        con.execute(f'CREATE MACRO {schema}."{name}"({", ".join(params)}) AS{table} {definition}')
    # Views may read one another: create them in rounds until none is left (a view whose table is left out
    # above stays out too).
    pending = [sql for (sql,) in views]
    while pending:
        failed = []
        for sql in pending:
            try:
                con.execute(sql)
            except duckdb.CatalogException:
                failed.append(sql)
        if len(failed) == len(pending):
            break
        pending = failed


def _latest_night(con: duckdb.DuckDBPyConnection, night) -> None:
    """The latest night's relations by plain name (as `warehouse.use_night` binds them), as tables: the pages
    about tonight query these directly, without going through the history intervals."""
    warehouse.use_night(con, night)
    for (name,) in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE temporary AND database_name = 'temp' ORDER BY 1"
    ).fetchall():
        con.execute(f'CREATE TABLE main."{name}" AS SELECT * FROM temp.main."{name}"')
        con.execute(f'DROP VIEW temp.main."{name}"')
    # The latest night's per-school figures, computed once per copy rather than on every page
    if con.execute("""SELECT count(*) FROM duckdb_views() WHERE database_name = 'memory'
                      AND schema_name = 'diagnostics' AND view_name = 'school_counts'""").fetchone()[0]:
        con.execute("CREATE TABLE _scope.school_counts AS SELECT * FROM diagnostics.school_counts")
        con.execute("CREATE OR REPLACE VIEW diagnostics.school_counts AS SELECT * FROM _scope.school_counts")
    # explain's search tables, once per copy: a search then never normalises 200 000 names or reads the history
    show_people(con)
    explain.index(con, night, temp=False)
    existing = set(
        con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'memory'").fetchall()
    )
    for (schema, table), columns in _INDEXES.items():
        if (schema, table) in existing:
            for column in columns:  # identifiers from the code above, not from data
                con.execute(f'CREATE INDEX "{table}_{column}" ON {schema}."{table}" ("{column}")')


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text


class WarehouseBusy(RuntimeError):
    """A run held the warehouse for longer than a page may wait."""


class NoWarehouse(RuntimeError):
    """There is no warehouse file (no night has run yet)."""


def _stamp(path: Path) -> tuple | None:
    """Changes whenever DuckDB writes the file (or its write-ahead log)."""
    out = []
    for p in (path, Path(f"{path}.wal")):
        try:
            st = os.stat(p)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append(None)
    return None if out[0] is None else tuple(out)


IDLE_CURSORS = 4  # prepared cursors a copy keeps between requests


@dataclass
class Built:
    """One scope's copy of the warehouse as of one set of published nights."""

    con: duckdb.DuckDBPyConnection
    version: tuple  # (nights, latest night, latest published_at)
    stamp: tuple | None
    cache: dict = field(default_factory=dict)  # results computed once per version (the trend)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _idle: list = field(default_factory=list)  # prepared cursors no request is using

    @property
    def night(self):
        """The latest published night of the copy (None: nothing published yet)."""
        return self.version[1]

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the copy with people.sql's views (who may be shown, and how) over the latest night, made
        once per cursor and kept for the next request. For reading only: whatever makes temp tables (the
        validation file's sheets) takes a `fresh_cursor`."""
        with self.lock:
            cur = self._idle.pop() if self._idle else None
            if cur is None:
                cur = self.con.cursor()
                fresh = True
            else:
                fresh = False
        try:
            if fresh and self.night is not None:
                show_people(cur)
            yield cur
        except BaseException:
            cur.close()  # in whatever state the failure left it
            raise
        with self.lock:
            if len(self._idle) < IDLE_CURSORS:
                self._idle.append(cur)
                return
        cur.close()

    @contextmanager
    def fresh_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own, closed after the request."""
        with self.lock:
            cur = self.con.cursor()
        try:
            yield cur
        finally:
            cur.close()


def _attach(con: duckdb.DuckDBPyConnection, path: Path, retry_seconds: float) -> None:
    deadline = time.monotonic() + retry_seconds
    pause = 0.05
    while True:
        try:
            con.execute("ATTACH ? AS wh (READ_ONLY)", [str(path)])
            return
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() + pause > deadline:
                raise WarehouseBusy(str(exc)) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def build(
    path: Path,
    scope: Scope,
    retry_seconds: float = 0.0,
    unless_version: tuple | None = None,
    threads: int | None = None,
    build_threads: int | None = None,
) -> Built | None:
    """The scope's part of the warehouse, copied into an in-memory database (the file is attached read-only
    only while copying). None when the published nights are still `unless_version`. DuckDB threads of the copy:
    `build_threads` while building it, `threads` for the pages read from it (default: DuckDB's, one per core)."""
    path = Path(path)
    if not path.exists():
        raise NoWarehouse(str(path))
    stamp = _stamp(path)
    con = duck.connect(None)
    try:
        if build_threads:
            con.execute("SET threads = ?", [build_threads])
        # a look-up through an index up to this many rows (a school's memberships, a common name's persons)
        # rather than DuckDB's default of 2 048, beyond which it scans the whole table
        con.execute("SET index_scan_max_count = 100000")
        _attach(con, path, retry_seconds)
        try:
            version = tuple(
                con.execute("SELECT count(*), max(as_of), max(published_at) FROM wh.nightly.nights").fetchone()
            )
        except duckdb.CatalogException:
            version = (0, None, None)
        if unless_version is not None and version == unless_version:
            con.close()
            return None
        con.execute("CREATE SCHEMA _scope")
        if version[0]:
            _keys(con, scope)
            _rebuild_catalog(con)
            _latest_night(con, version[1])
        else:  # nothing published yet: an empty catalog
            for schema in SCHEMAS:
                con.execute(f"CREATE SCHEMA {schema}")
        con.execute("DETACH wh")
        if threads:
            con.execute("SET threads = ?", [threads])
    except BaseException:
        con.close()
        raise
    return Built(con, version, stamp)


class ScopedWarehouse:
    """One scope's copy of the warehouse (see `build`), kept between requests and rebuilt after a publish.

    A request reads the in-memory copy and never the file, so pages never hold the warehouse's lock while a
    run writes it. When the file has changed and stayed unchanged for `settle_seconds` (a run writes it in
    several steps), a new copy is built in the background from the published nights, if they changed, and
    replaces the old one; requests meanwhile read the old copy, which is consistent (the nights as they were).
    Only the very first copy is built while a request waits (retrying while a run holds the lock, for up to
    `retry_seconds`, then WarehouseBusy)."""

    def __init__(
        self,
        path: Path,
        scope: Scope,
        retry_seconds: float = 5.0,
        settle_seconds: float = 2.0,
        threads: int | None = None,
        background=None,
    ):
        self.path = Path(path)
        self.scope = scope
        self.retry_seconds = retry_seconds
        self.settle_seconds = settle_seconds
        self.threads = threads
        self.background = background or (lambda: _BACKGROUND_BUILDS)  # a context manager around a rebuild
        self._current: Built | None = None
        self._lock = threading.Lock()
        self._seen: tuple | None = None  # (stamp, first seen at) of a change not yet built
        self._building = False

    @property
    def current(self) -> Built:
        built = self._ensure()
        return built

    def _ensure(self) -> Built:
        stamp = _stamp(self.path)
        with self._lock:
            current = self._current
            if current is None:
                # an admin waits for this one: built on every core (at the server's low priority)
                self._current = current = build(self.path, self.scope, self.retry_seconds, threads=self.threads)
                return current
            if stamp == current.stamp or self._building:
                return current
            now = time.monotonic()
            if self._seen is None or self._seen[0] != stamp:
                self._seen = (stamp, now)
            if now - self._seen[1] >= self.settle_seconds:
                self._building = True
                threading.Thread(target=self._rebuild, args=(current,), daemon=True).start()
            return current

    def _rebuild(self, current: Built) -> None:
        try:
            with self.background():
                new = build(
                    self.path,
                    self.scope,
                    0.0,
                    unless_version=current.version,
                    threads=self.threads,
                    build_threads=self.threads,
                )
        except (WarehouseBusy, duckdb.Error, OSError, NoWarehouse):
            new = False  # a run holds the file again: try at a later request
        with self._lock:
            self._building = False
            self._seen = None
            if new is None:  # same nights (a held night, an approval record): keep the copy
                current.stamp = _stamp(self.path)
            elif new:
                self._current = new

    def wait_until_current(self, timeout: float = 30.0) -> Built:
        """For tests and the benchmark: rebuild now if the file changed, and return the up-to-date copy."""
        deadline = time.monotonic() + timeout
        saved, self.settle_seconds = self.settle_seconds, 0.0
        try:
            while time.monotonic() < deadline:
                built = self._ensure()
                if not self._building and built.stamp == _stamp(self.path):
                    return built
                time.sleep(0.05)
            raise TimeoutError("the scoped copy did not catch up")
        finally:
            self.settle_seconds = saved

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._ensure().cursor() as cur:
            yield cur

    @property
    def cache(self) -> dict:
        return self._ensure().cache

    @property
    def version(self) -> tuple:
        return self._ensure().version

    def close(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current.con.close()
                self._current = None


def connect(warehouse: Path, scope: Scope) -> duckdb.DuckDBPyConnection:
    """A stand-alone scoped copy (tests, scripts)."""
    return build(warehouse, scope).con
