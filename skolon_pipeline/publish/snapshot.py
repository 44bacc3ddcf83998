"""The published warehouse: readers open it read-only, the pipeline replaces it whole, atomically.

Nobody ever opens the published file (`SKOLON_WAREHOUSE`, `data/warehouse.duckdb`) for writing. A step that
changes the warehouse (publishing a night, recording a held night, an approval) works on a private copy
beside it, `<name>.<pid>.writing`, checkpoints and closes it, and renames it over the published file
(`os.replace`, atomic on one file system). So:

* a reader (an analyst's DuckDB session, `explain`, `export`, `sql`, the School Admin) never blocks a run,
  and a run never breaks a reader: a connection held open all night keeps reading the night it opened (the
  old file stays alive under it until it closes) and sees the new night when it reconnects;
* a run killed or failing at any point (a full disk included) leaves the published file exactly as it was,
  and at most a `.writing` copy, which the next writer removes.

Readers open the warehouse through `connect_published` only; writers through `rewrite` only. Writers are
serialised by the Dagster pool `duckdb_warehouse` and the CLI's run lock, so two copies never race.
The copy costs one sequential read and write of the file per writing step (see docs/performance.md).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from skolon_pipeline import duck, text
from skolon_pipeline.files import owner_only, private_dir, private_file

WRITING_SUFFIX = ".writing"


class WarehouseMissing(FileNotFoundError):
    """No night has been published yet: there is no warehouse file to read."""


class SnapshotError(OSError):
    """The new warehouse could not be written (a full disk, say): the published one is unchanged."""


def connect_published(warehouse: Path | str) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published warehouse: the one way readers open it.

    Never blocks a run and is never broken by one; it keeps reading the version it opened until closed. The
    file is attached to a database instance of the connection's own (not `duckdb.connect(path)`, whose
    per-process cache would hand a long-running reader such as the School Admin the version an older
    connection opened), under the name a direct open gives it, so queries read exactly as before."""
    path = Path(warehouse)
    if not path.is_file():
        raise WarehouseMissing(f"no warehouse at {path}: run `skolon-pipeline run` first")
    con = duck.connect()
    try:
        name = (path.stem or "warehouse").replace('"', '""')
        con.execute(f'ATTACH ? AS "{name}" (READ_ONLY)', [str(path)])
        con.execute(f'USE "{name}"')
    except BaseException:
        con.close()
        raise
    return con


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def dead_writing_copies(warehouse: Path | str) -> list[Path]:
    """Copies (and their write-ahead logs and spill folders) left behind by writers whose process is gone."""
    path = Path(warehouse)
    if not path.parent.is_dir():
        return []
    dead = []
    for p in sorted(path.parent.glob(f"{path.name}.*{WRITING_SUFFIX}*")):
        pid = p.name[len(path.name) + 1 :].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or not _pid_alive(int(pid)):
            dead.append(p)
    return dead


def remove_dead_writing_copies(warehouse: Path | str) -> list[Path]:
    """Removes what writers that died (kill -9, power loss) left beside the warehouse; they may hold personal
    data, and they take space a full disk needs."""
    removed = dead_writing_copies(warehouse)
    for p in removed:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_with_wal(src: Path, dst: Path) -> None:
    """A byte copy of a closed DuckDB file (and of its write-ahead log: a warehouse written in place by an
    older version may carry one, and DuckDB replays it when the copy is opened)."""
    shutil.copyfile(src, dst)
    wal = Path(f"{src}.wal")
    if wal.exists():
        shutil.copyfile(wal, f"{dst}.wal")


@dataclass
class Writer:
    """The writer's connection to its private copy; set `keep = False` to discard what the block wrote."""

    con: duckdb.DuckDBPyConnection
    keep: bool = True


@contextmanager
def rewrite(warehouse: Path | str, keep: bool = True) -> Iterator[Writer]:
    """A read-write connection (`.con`) to a private copy of the published warehouse (an empty new one before
    the first night). When the block ends without an exception and `.keep` is still true, the copy replaces
    the published file atomically; otherwise it is discarded and the published file is untouched.

    Disk full (or any I/O error) while copying, committing, checkpointing or renaming raises SnapshotError
    naming the cause; the published warehouse stays as it was."""
    published = Path(warehouse)
    private_dir(published.parent, owned=False)
    remove_dead_writing_copies(published)
    work = published.with_name(f"{published.name}.{os.getpid()}{WRITING_SUFFIX}")
    con = None
    try:
        with owner_only():
            try:
                if published.exists():
                    _copy_with_wal(published, work)
                    con = duck.connect(work)
                else:
                    con = duck.connect(work, create=True)
            except OSError as exc:
                raise SnapshotError(f"cannot copy the warehouse {published} to write it: {exc}") from exc
            writer = Writer(con, keep)
            yield writer
            if writer.keep:
                try:
                    con.execute("CHECKPOINT")
                    con.close()
                    con = None
                    if Path(f"{work}.wal").exists():
                        raise SnapshotError(f"the warehouse copy {work} could not be checkpointed")
                    private_file(work)
                    _fsync(work)
                    os.replace(work, published)
                    _fsync(published.parent)
                except (OSError, duckdb.Error) as exc:
                    raise SnapshotError(f"cannot write the warehouse {published}: {text.one_line(str(exc))}") from exc
                # A write-ahead log of the file this one replaced (written in place by an older version) is now
                # part of it; left beside the new file, DuckDB would replay it there.
                Path(f"{published}.wal").unlink(missing_ok=True)
    finally:
        if con is not None:
            try:
                con.close()
            except duckdb.Error:
                pass
        for p in (work, Path(f"{work}.wal"), Path(f"{work}.tmp")):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
