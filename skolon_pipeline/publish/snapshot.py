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

A writer may instead keep its checkpointed copy as a *prepared* warehouse, `<name>.<night>.prepared` (the
night's change_set step does, for the night it let through; its sidecar `<...>.prepared.json` records what it
was prepared from: the identity of the published file it copied and of the rules' output, and the run).
`install_prepared` later renames it over the published file by the same path as `rewrite`, but only while
both identities still hold; otherwise it is removed and the caller publishes in full. A prepared file that
can no longer be installed (the published file or the rules' output changed since) is removed by the next
writer, and every prepared file by a run under the CLI's run lock (`remove_prepared`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from skolon_pipeline import duck, text
from skolon_pipeline.files import owner_only, private_dir, private_file

WRITING_SUFFIX = ".writing"
PREPARED_SUFFIX = ".prepared"


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


def identity(path: Path | str) -> list[int] | None:
    """What tells one version of a file from another (device, inode, size, modification time), or None when
    there is no file: a replaced file has another inode, a rewritten one another time."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def prepared_path(warehouse: Path | str, night: str) -> Path:
    """The prepared warehouse of a night (`night` is its ISO date, never registry data)."""
    path = Path(warehouse)
    return path.with_name(f"{path.name}.{night}{PREPARED_SUFFIX}")


def _sidecar(prepared: Path) -> Path:
    return Path(f"{prepared}.json")


@dataclass
class Prepare:
    """Keep the copy as the prepared warehouse of `night` (instead of replacing the published file): it was
    made from the rules' output `rules_db` (of identity `rules`, taken before it was read) by run `run_id`;
    `extra` is stored with it (JSON) for the install."""

    night: str
    run_id: str
    rules_db: Path
    rules: list[int] | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Writer:
    """The writer's connection to its private copy; set `keep = False` to discard what the block wrote, or
    `prepare` to keep it as a prepared warehouse rather than publish it."""

    con: duckdb.DuckDBPyConnection
    keep: bool = True
    prepare: Prepare | None = None


def _install(work: Path, published: Path) -> None:
    """Makes the closed, checkpointed copy `work` the published warehouse: durable first, then an atomic rename."""
    private_file(work)
    _fsync(work)
    os.replace(work, published)
    _fsync(published.parent)
    # A write-ahead log of the file this one replaced (written in place by an older version) is now part of
    # it; left beside the new file, DuckDB would replay it there.
    Path(f"{published}.wal").unlink(missing_ok=True)


def _read_prepared(prepared: Path) -> dict | None:
    try:
        meta = json.loads(_sidecar(prepared).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _installable(published: Path, prepared: Path, meta: dict | None) -> bool:
    """Whether the prepared file is the one its sidecar describes, made from the published file as it is now
    and from the rules' output as it is now."""
    return (
        meta is not None
        and meta.get("file") is not None
        and meta.get("file") == identity(prepared)
        and meta.get("base") == identity(published)
        and not Path(f"{published}.wal").exists()
        and meta.get("rules") is not None
        and meta.get("rules") == identity(meta.get("rules_db", ""))
    )


def _remove_prepared_file(prepared: Path) -> None:
    for p in (prepared, Path(f"{prepared}.wal"), _sidecar(prepared)):
        p.unlink(missing_ok=True)


def _prepared_files(published: Path) -> list[Path]:
    if not published.parent.is_dir():
        return []
    names = {
        p.name.removesuffix(".json").removesuffix(".wal")
        for p in published.parent.glob(f"{published.name}.*{PREPARED_SUFFIX}*")
    }
    return [published.with_name(n) for n in sorted(names) if n.endswith(PREPARED_SUFFIX)]


def remove_prepared(warehouse: Path | str, stale_only: bool = False) -> list[Path]:
    """Removes the prepared warehouses beside the warehouse (with `stale_only`, those that can no longer be
    installed: the published file or the rules' output changed since, or a run died half-way through
    preparing); they hold personal data, and they take space a full disk needs."""
    published = Path(warehouse)
    removed = []
    for prepared in _prepared_files(published):
        if stale_only and _installable(published, prepared, _read_prepared(prepared)):
            continue
        _remove_prepared_file(prepared)
        removed.append(prepared)
    return removed


def install_prepared(warehouse: Path | str, night: str, run_id: str, rules_db: Path) -> dict[str, Any] | None:
    """Installs the prepared warehouse of `night` as the published one if run `run_id` prepared it from the
    published file as it is now and from `rules_db` as it is now, and returns what was stored with it; else
    None (the caller publishes in full). The prepared file is gone afterwards either way, and so are the other
    nights' prepared files the new published file makes stale. SnapshotError: the rename failed, the
    published warehouse is as it was."""
    published = Path(warehouse)
    prepared = prepared_path(published, night)
    meta = _read_prepared(prepared)
    try:
        if not (
            _installable(published, prepared, meta)
            and meta.get("night") == night
            and meta.get("run_id") == run_id
            and Path(meta.get("rules_db", "")) == Path(rules_db)
        ):
            return None
        try:
            _install(prepared, published)
        except OSError as exc:
            raise SnapshotError(f"cannot write the warehouse {published}: {text.one_line(str(exc))}") from exc
        return meta.get("extra", {})
    finally:
        _remove_prepared_file(prepared)
        remove_prepared(published, stale_only=True)


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
    remove_prepared(published, stale_only=True)
    work = published.with_name(f"{published.name}.{os.getpid()}{WRITING_SUFFIX}")
    sidecar = Path(f"{work}.json")
    con = None
    try:
        with owner_only():
            base = identity(published)
            try:
                if published.exists():
                    _copy_with_wal(published, work)
                    con = duck.connect(work)
                else:
                    con = duck.connect(work, create=True)
            except OSError as exc:
                raise SnapshotError(f"cannot copy the warehouse {published} to write it: {exc}") from exc
            # What the copy was made from (a prepared copy is installable only while the published file is this one).
            copied_from = base if identity(published) == base and not Path(f"{published}.wal").exists() else False
            writer = Writer(con, keep)
            yield writer
            if writer.keep:
                try:
                    con.execute("CHECKPOINT")
                    con.close()
                    con = None
                    if Path(f"{work}.wal").exists():
                        raise SnapshotError(f"the warehouse copy {work} could not be checkpointed")
                    if writer.prepare is None:
                        _install(work, published)
                    elif copied_from is not False:
                        _keep_prepared(work, sidecar, published, copied_from, writer.prepare)
                except (OSError, duckdb.Error) as exc:
                    raise SnapshotError(f"cannot write the warehouse {published}: {text.one_line(str(exc))}") from exc
                if writer.prepare is None:  # every prepared warehouse was made from the file just replaced
                    remove_prepared(published, stale_only=True)
    finally:
        if con is not None:
            try:
                con.close()
            except duckdb.Error:
                pass
        for p in (work, Path(f"{work}.wal"), Path(f"{work}.tmp"), sidecar):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _keep_prepared(work: Path, sidecar: Path, published: Path, base: list[int] | None, prepare: Prepare) -> None:
    """Renames the closed, checkpointed copy to the night's prepared warehouse, its sidecar written first (the
    sidecar names the file by its identity, which the rename keeps, so a half-done pair is never installed)."""
    target = prepared_path(published, prepare.night)
    _remove_prepared_file(target)
    private_file(work)
    _fsync(work)
    meta = {
        "night": prepare.night,
        "run_id": prepare.run_id,
        "base": base,
        "rules_db": str(prepare.rules_db),
        "rules": prepare.rules,
        "file": identity(work),
        "extra": prepare.extra,
    }
    with open(sidecar, "w", encoding="utf-8") as f:
        json.dump(meta, f, default=str)
        f.flush()
        os.fsync(f.fileno())
    private_file(sidecar)
    os.replace(sidecar, _sidecar(target))
    os.replace(work, target)
    _fsync(published.parent)
