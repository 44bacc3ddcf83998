"""Small DuckDB helpers shared by the stages."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

MEMORY_LIMIT_ENV = "SKOLON_DUCKDB_MEMORY_LIMIT"
# Per connection; the stages run one after another, so this bounds a night's memory whatever the drop's size:
# beyond it DuckDB spills joins, sorts and temporary tables to `<database>.tmp/` (beside the file, so in the
# same owner-only folder). DuckDB's own default is 80 % of the machine's RAM.
DEFAULT_MEMORY_LIMIT = "3GB"
# The oldest DuckDB release that can read the files the pipeline creates (the warehouse above all): analysts'
# DuckDB need not be the pipeline's. One constant; DuckDB writes this storage format into every new file.
# DuckDB 2.0's own format is read by no 1.x release; v1.2.0 is read by 1.2 through 1.5 (the CLI on PyPI and npm,
# DBeaver's and BI tools' drivers) and 2.0. Raise it only when every analysts' tool reads the newer format.
STORAGE_COMPATIBILITY_VERSION = "v1.2.0"
# A night's own working files (each source's staging file, the rules' output) are read only by this pipeline's
# DuckDB, in the same night: they are written in DuckDB's newest format, whose compression is faster to write
# (the rules step of a 200 000-person night: 3.6 s against 3.9 s, and a 35 MB file against 40 MB).
WORKING_STORAGE_VERSION = "latest"


def connect(
    path: Path | str | None = None,
    read_only: bool = False,
    create: bool = False,
    storage: str = STORAGE_COMPATIBILITY_VERSION,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the installation's memory limit (`SKOLON_DUCKDB_MEMORY_LIMIT`, e.g. `2GB`).
    Every file it creates or ATTACHes anew (the warehouse, the snapshot) is written in the storage format
    `storage`: STORAGE_COMPATIBILITY_VERSION unless the caller creates a night's working file
    (WORKING_STORAGE_VERSION); `create` is kept for callers that say so explicitly.

    A database file spills beside itself (`spill_dir`). An in-memory one (the readers: exports, explain, the School
    Admin) would spill into `.tmp` of the process's working directory, DuckDB's default, with the sheets' names
    and e-mail addresses in it; it spills into a folder of its own instead, owner-only (mkdtemp makes it 0700),
    removed when the connection is gone. One folder per connection: DuckDB names its spill files alike in every
    database instance."""
    config = {
        "memory_limit": os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT,
        "storage_compatibility_version": storage,
    }
    if path is None:
        spill = tempfile.mkdtemp(prefix="skolon-duckdb-")
        config["temp_directory"] = spill
        try:
            con = duckdb.connect(":memory:", config=config)
        except BaseException:
            shutil.rmtree(spill, ignore_errors=True)
            raise
        weakref.finalize(con, shutil.rmtree, spill, ignore_errors=True)
        return con
    return duckdb.connect(str(path), read_only=read_only, config=config)


def spill_dir(path: Path | str) -> Path:
    """Where DuckDB spills a database file's joins, sorts and temporary tables: `<file>.tmp/` beside it. The
    spill holds whatever the queries read (civic numbers and addresses in clear, during extract)."""
    return Path(f"{path}.tmp")


@contextmanager
def session(path: Path | str, read_only: bool = False, create: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to one step's own working file (a staging file, the rules' output), in
    WORKING_STORAGE_VERSION's format when it creates it, whose spill folder is removed when the step ends or
    fails (and before it starts: what a killed run of the same step left)."""
    spill = spill_dir(path)
    shutil.rmtree(spill, ignore_errors=True)
    con = connect(path, read_only=read_only, create=create, storage=WORKING_STORAGE_VERSION)
    try:
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _open_elsewhere(database: Path) -> bool:
    """Whether another process has the DuckDB file open (DuckDB holds a POSIX lock on it while open). Only
    for files this process does not have open: closing our probe would drop our own DuckDB's lock."""
    try:
        fd = os.open(database, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock
    return False


def remove_stale_spill(folder: Path) -> list[Path]:
    """Removes every spill folder under `folder` whose database no other process has open: the leftovers of
    runs that were killed (kill -9, out of memory) before DuckDB could remove them."""
    removed = []
    if not Path(folder).is_dir():
        return removed
    for spill in sorted(Path(folder).rglob("*.tmp")):
        if spill.is_dir() and not _open_elsewhere(Path(str(spill)[: -len(".tmp")])):
            shutil.rmtree(spill, ignore_errors=True)
            removed.append(spill)
    return removed


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, rolled back on any exception. The exception that caused the failure is the one raised:
    when COMMIT itself fails (a full disk), DuckDB has already ended the transaction, and the ROLLBACK's own
    error ("no transaction is active") would otherwise hide the cause."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None):
    """The single value of a query; the result is consumed whole, so the connection is free afterwards."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def row_counts(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> dict[str, int]:
    return {t: scalar(con, f"SELECT count(*) FROM {t}") for t in tables}
