"""Runs of the night as the CLI starts them: one at a time per warehouse, and causes rather than wrappers.

A run holds an exclusive lock on `<warehouse>.run.lock` from before Dagster starts until its summary is
printed. A second run waits for it (up to `--wait` seconds, saying once whom it waits for) and then refuses
in one line naming the run that holds it. The lock is an advisory `flock`: the kernel releases it when the
holding process dies, so a crash (kill -9 included) never leaves it held.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skolon_pipeline import text
from skolon_pipeline.files import owner_only, private_dir

POLL_SECONDS = 0.5
# Tags on every run the CLI starts: which process runs it, so a later run can tell a dead run from a live one.
PID_TAG = "skolon/pid"
HOST_TAG = "skolon/host"


def process_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


class RunRefused(RuntimeError):
    """Another run holds the warehouse, and waiting for it timed out."""


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(f"{warehouse.name}.run.lock")


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another run"
    return (
        f"the run of night {info.get('night', '?')} (process {info.get('pid', '?')}, "
        f"started {info.get('started', '?')})"
    )


@contextmanager
def run_lock(warehouse: Path, night: dt.date, wait_seconds: float, command: str = "run") -> Iterator[None]:
    """Holds the warehouse's run lock for the block; raises RunRefused after `wait_seconds` of waiting."""
    path = lock_path(warehouse)
    private_dir(path.parent, owned=False)
    with owner_only():
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + max(0.0, wait_seconds)
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    raise RunRefused(
                        f"{holder} is still writing the warehouse {warehouse}; not started after waiting "
                        f"{wait_seconds:g} s (--wait SECONDS waits longer)"
                    ) from None
                if not announced:
                    print(f"waiting up to {wait_seconds:g} s for {holder} to finish", file=sys.stderr, flush=True)
                    announced = True
                time.sleep(POLL_SECONDS)
        info = {
            "pid": os.getpid(),
            "night": night.isoformat(),
            "command": command,
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM (systemd stopping the service, `kill`, a container shutting down) ends a run the way Ctrl-C
    does: Dagster stops the step, marks the run failed and frees its pool slots, and the CLI says so, within
    seconds. (While its steps execute Dagster maps SIGTERM onto its own interrupt handling; this covers the
    rest: waiting for the lock or a slot, the summary.)"""

    def interrupt(_signum, _frame):
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_exceptions() -> tuple[type[BaseException], ...]:
    from dagster._core.errors import DagsterExecutionInterruptedError

    return (KeyboardInterrupt, DagsterExecutionInterruptedError)


# Dagster's wrappers around the exception a step raised: the cause is inside.
_WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError", "DagsterUserCodeProcessError"}
# Exceptions whose message already says everything (their class name would only add noise).
_SELF_EXPLAINING = {
    "Failure",
    "SourceError",
    "AllSourcesFailed",
    "NightHeld",
    "SnapshotError",
    "ExportError",
    "ConfigError",
    "OSError",
}


def error_line(error) -> str:
    """The cause of a step failure in one line, from Dagster's SerializableErrorInfo: the exception the step
    raised (not the wrapper Dagster puts around it), control characters escaped."""
    while error.cls_name in _WRAPPERS and (error.cause or error.context):
        error = error.cause or error.context
    if error.cls_name == "DagsterExecutionInterruptedError":
        return "interrupted (SIGTERM or Ctrl-C)"
    message = error.message.strip()
    # Dagster's message is "<qualified class>: <text>"
    qualified, sep, rest = message.partition(": ")
    if sep and qualified.split(".")[-1] == (error.cls_name or ""):
        is_duckdb = qualified.startswith(("duckdb.", "_duckdb."))
        message = rest if error.cls_name in _SELF_EXPLAINING or is_duckdb else f"{error.cls_name}: {rest}"
    return text.one_line(message)


def exception_line(exc: BaseException) -> str:
    """An exception the CLI caught, in one line: its own message (its class name when it has none)."""
    message = str(exc).strip()
    if not message:
        return type(exc).__name__
    if type(exc).__name__ in _SELF_EXPLAINING or type(exc).__module__.startswith(("duckdb", "_duckdb")):
        return text.one_line(message)
    return text.one_line(f"{type(exc).__name__}: {message}")


# --- what a run that died leaves behind -------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_is_dead(run) -> bool:
    """A run this CLI started (tagged with its process) whose process is gone: killed, crashed, powered off."""
    pid = run.tags.get(PID_TAG, "")
    return pid.isdigit() and run.tags.get(HOST_TAG) == socket.gethostname() and not _pid_alive(int(pid))


def release_dead_runs(instance, pools: tuple[str, ...]) -> list[str]:
    """Marks the dead runs of this host failed and frees every pool slot held by a run that is dead or over (a
    killed run never frees its slot, and the next night would wait for it forever). Returns their run ids."""
    import dagster as dg

    in_progress = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.CANCELING,
            ]
        )
    )
    released = []
    for run in in_progress:
        if _run_is_dead(run):
            instance.report_run_failed(
                run, message=f"its process {run.tags[PID_TAG]} is gone (killed or crashed); released by a later run"
            )
            released.append(run.run_id)
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return released
    for pool in pools:
        info = storage.get_concurrency_info(pool)
        for run_id in {s.run_id for s in info.claimed_slots} | {s.run_id for s in info.pending_steps}:
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished or run_id in released:
                storage.free_concurrency_slots_for_run(run_id)
                if run_id not in released:
                    released.append(run_id)
    return released


def wait_for_pools(instance, pools: tuple[str, ...], wait_seconds: float) -> None:
    """Waits (up to `wait_seconds`) until no live run holds a slot of `pools`; then RunRefused names the run
    holding it. Called before a run starts, so it never waits forever inside Dagster for a slot."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    deadline = time.monotonic() + max(0.0, wait_seconds)
    announced = False
    while True:
        holders = [(pool, slot) for pool in pools for slot in storage.get_concurrency_info(pool).claimed_slots]
        if not holders:
            return
        pool, slot = holders[0]
        run = instance.get_run_by_id(slot.run_id)
        who = (
            f"run {slot.run_id} (step {slot.step_key}"
            + (f", process {run.tags[PID_TAG]}" if run is not None and PID_TAG in run.tags else "")
            + ")"
        )
        if time.monotonic() >= deadline:
            raise RunRefused(
                f"{who} holds the {pool!r} pool slot; not started after waiting {wait_seconds:g} s "
                "(--wait SECONDS waits longer; a run that is gone is released by the next run)"
            )
        if not announced:
            print(
                f"waiting up to {wait_seconds:g} s for {who} to free the {pool!r} pool slot",
                file=sys.stderr,
                flush=True,
            )
            announced = True
        time.sleep(POLL_SECONDS)
        release_dead_runs(instance, pools)


def make_private(folder: Path) -> None:
    """Makes a folder tree owner-only (DAGSTER_HOME: run records, event logs and compute logs)."""
    for root, _dirs, files in os.walk(folder):
        os.chmod(root, 0o700)
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                os.chmod(p, 0o600)
