"""A night beside its readers and beside another run, end to end through the CLI (issue 18, item 1 and 13).

Readers are separate processes, as analysts and `explain` are: an analyst's read-only session held open across
the whole run, `explain` polled in a loop during it, and a second and third `run` started while the first runs.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skolon_pipeline import cli
from skolon_pipeline.demo import DEMO_NIGHT
from skolon_pipeline.runs import lock_path

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "data"
RUN_TIMEOUT = 300

READER = """
import sys
from skolon_pipeline.publish import snapshot
con = snapshot.connect_published(sys.argv[1])
def state():
    return con.execute("SELECT max(as_of)::VARCHAR, (SELECT count(*) FROM roster.users) FROM nightly.nights").fetchone()
print(*state(), flush=True)
sys.stdin.readline()
print(*state(), flush=True)
"""

EXPLAIN_LOOP = """
import pathlib, sys, time
from skolon_pipeline.explain import find
warehouse, stop = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
answered, errors = 0, []
deadline = time.monotonic() + 600
while not stop.exists() and time.monotonic() < deadline:
    try:
        assert find(warehouse, "an").found
        answered += 1
    except Exception as exc:
        errors.append(repr(exc)[:300])
    time.sleep(0.1)  # ten questions a second see every step of the run; faster only takes CPU from the run
print(answered, len(errors), errors[:3], flush=True)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKOLON_") and k != "DAGSTER_HOME"}
    env["PYTHONPATH"] = str(REPO)
    return env


def _args(tmp_path: Path, night: dt.date, *extra: str) -> list[str]:
    return [
        "run",
        "--as-of",
        str(night),
        "--data-dir",
        str(DEMO_DATA),
        "--warehouse",
        str(tmp_path / "wh" / "warehouse.duckdb"),
        "--export-dir",
        str(tmp_path / "exports"),
        *extra,
    ]


def _start(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs
    )


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    for name in ("SKOLON_DATA_DIR", "SKOLON_WAREHOUSE", "SKOLON_EXPORT_DIR", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.slow
def test_a_night_runs_to_the_end_beside_readers_and_a_second_run(tmp_path, capsys):
    night1, night2, night3 = DEMO_NIGHT, DEMO_NIGHT + dt.timedelta(days=1), DEMO_NIGHT + dt.timedelta(days=2)
    assert cli.main(_args(tmp_path, night1)) == 0
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    stop = tmp_path / "stop-explain"

    analyst = _start(["-c", READER, str(warehouse)], stdin=subprocess.PIPE)
    first_view = analyst.stdout.readline().split()
    assert first_view[0] == str(night1) and int(first_view[1]) > 400
    explain = _start(["-c", EXPLAIN_LOOP, str(warehouse), str(stop)])
    try:
        first = _start(["-m", "skolon_pipeline.cli", *_args(tmp_path, night2)])
        _wait_for(
            lambda: lock_path(warehouse).exists() and lock_path(warehouse).stat().st_size > 0,
            60,
            "the first run to take the run lock",
        )
        # A run started now refuses at once, in one line naming the run that holds the warehouse ...
        capsys.readouterr()
        assert cli.main(_args(tmp_path, night3, "--wait", "0")) == cli.EXIT_FAILED
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith(f"error: the run of night {night2} (process {first.pid}")
        assert "still writing the warehouse" in err and "Dagster" not in err
        # ... or waits for it, and then runs.
        second = _start(["-m", "skolon_pipeline.cli", *_args(tmp_path, night3, "--wait", str(RUN_TIMEOUT))])
        out1, err1 = first.communicate(timeout=RUN_TIMEOUT)
        out2, err2 = second.communicate(timeout=RUN_TIMEOUT)
        assert first.returncode == 0, err1
        assert second.returncode == 0, err2
        assert f"night {night2}: published" in out1 and f"night {night3}: published" in out2
        assert f"waiting up to {RUN_TIMEOUT} s for the run of night {night2}" in err2
    finally:
        stop.touch()
        answered, failed, errors = explain.communicate(timeout=60)[0].split(" ", 2)
        analyst_view = analyst.communicate("\n", timeout=60)[0].split()
    # explain answered throughout and never failed; the analyst's session still reads the night it opened, whole
    assert int(answered) > 0 and int(failed) == 0, errors
    assert analyst_view == first_view and analyst.returncode == 0
    from skolon_pipeline.publish import snapshot

    with snapshot.connect_published(warehouse) as con:
        assert [r[0] for r in con.execute("SELECT as_of FROM nightly.nights ORDER BY 1").fetchall()] == [
            night1,
            night2,
            night3,
        ]
    assert sorted(p.name for p in warehouse.parent.iterdir()) == [
        "staging",
        "warehouse.duckdb",
        "warehouse.duckdb.run.lock",
    ]


@pytest.mark.slow
def test_a_failed_export_after_publishing_says_the_night_was_published(tmp_path, capsys):
    (tmp_path / "exports").write_text("not a folder")  # the export volume is unusable
    assert cli.main(_args(tmp_path, DEMO_NIGHT)) == cli.EXIT_FAILED
    captured = capsys.readouterr()
    assert f"night {DEMO_NIGHT}: published" in captured.out
    # Dagster's own log comes first; the CLI's last lines say what happened and why, in plain words.
    tail = captured.err.strip().splitlines()[-3:]
    assert tail[0] == f"night {DEMO_NIGHT}: published, but a later step FAILED"
    assert tail[1].startswith("  step exports__validation_files: ") and "Not a directory" in tail[1]
    assert "Dagster" not in "".join(tail) and "Nothing was published" not in captured.err


def _stage_seen(warehouse: Path, night: dt.date, point: str):
    staging = warehouse.parent / "staging" / night.isoformat()
    if point == "extract":  # the source's staging database is being filled (no pool slot)
        return (staging / "lindby.duckdb").exists()
    if point == "rules":  # the rules step holds the warehouse pool slot
        return (staging / "_rules.duckdb").exists()
    # the change set or the publish step holds the slot and a writer's copy of the warehouse exists
    return any(warehouse.parent.glob("warehouse.duckdb.*.writing"))


@pytest.mark.slow
def test_a_run_killed_at_any_point_never_blocks_the_next_night(tmp_path, capsys):
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "skolon_pipeline" / "dagster.yaml").read_text())
    env = {**_env(), "DAGSTER_HOME": str(home)}
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    first = subprocess.run(
        [sys.executable, "-m", "skolon_pipeline.cli", *_args(tmp_path, DEMO_NIGHT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert first.returncode == 0, first.stderr
    published = warehouse.read_bytes()

    nights = iter(DEMO_NIGHT + dt.timedelta(days=n) for n in range(1, 10))
    for point in ("extract", "rules", "writer"):
        night = next(nights)
        run = subprocess.Popen(
            [sys.executable, "-m", "skolon_pipeline.cli", *_args(tmp_path, night, "--wait", "5")],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The lambda is called within this iteration only, so binding the loop variables late is what we want.
        _wait_for(lambda: _stage_seen(warehouse, night, point) or run.poll() is not None, RUN_TIMEOUT, point)  # noqa: B023
        assert run.poll() is None, f"the run ended before reaching {point}: {run.stderr.read()}"
        os.killpg(run.pid, 9)  # kill -9 of the whole process tree
        run.wait(timeout=30)
        assert warehouse.read_bytes() == published  # the published night is untouched, whole

    # SIGTERM ends a run within seconds, cleanly: the run is marked failed, nothing is held.
    night = next(nights)
    run = subprocess.Popen(
        [sys.executable, "-m", "skolon_pipeline.cli", *_args(tmp_path, night, "--wait", "5")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: _stage_seen(warehouse, night, "extract") or run.poll() is not None, RUN_TIMEOUT, "extract")
    run.terminate()
    started = time.monotonic()
    err = run.communicate(timeout=30)[1]
    assert time.monotonic() - started < 15 and run.returncode != 0
    assert "Traceback" not in err.strip().splitlines()[-1]

    # The next night runs to the end: nothing the dead runs left blocks it.
    night = next(nights)
    started = time.monotonic()
    # (--allow-stale: the demo's one drop serves every night here, so it is older than max_drop_age_days by now)
    last = subprocess.run(
        [sys.executable, "-m", "skolon_pipeline.cli", *_args(tmp_path, night, "--wait", "5", "--allow-stale")],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    elapsed = time.monotonic() - started
    assert last.returncode == 0, last.stderr
    assert f"night {night}: published" in last.stdout
    assert elapsed < 120, elapsed  # a demo night takes 10-40 s on a shared machine; the bug was "forever"

    with dg.DagsterInstance.from_config(str(home)) as instance:
        statuses = [r.status for r in instance.get_runs()]
        assert statuses.count(dg.DagsterRunStatus.SUCCESS) == 2
        assert not [s for s in statuses if s in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING)]
        info = instance.event_log_storage.get_concurrency_info("duckdb_warehouse")
        assert info.claimed_slots == [] and info.pending_steps == []
    # Nothing of the dead runs is left: no writer's copy, no spill folder; DAGSTER_HOME is owner-only.
    assert sorted(p.name for p in warehouse.parent.iterdir()) == [
        "staging",
        "warehouse.duckdb",
        "warehouse.duckdb.run.lock",
    ]
    assert not list((warehouse.parent / "staging").rglob("*.tmp")) and not list(
        (warehouse.parent / "staging").rglob("*.scratch")
    )
    loose = [p for p in home.rglob("*") if p.stat().st_mode & 0o077]
    assert loose == []


@pytest.mark.slow
def test_a_kill_during_a_spilling_extract_leaves_no_civic_number_on_disk(tmp_path):
    import re

    from skolon_pipeline.demo import generate_demo

    data = tmp_path / "data"
    # ~15 000 persons under a 160 MB memory limit: the extract's flattening spills for over a second (about 3.5 s
    # in), so the kill below lands in a live, spilling run. Measured on a quiet 2-core machine: at 176 MB it spills
    # as long and the night succeeds, at 192 MB and above it does not spill at all, and at 128 MB it runs out of
    # memory reading groups.json within 0.1 s of the first spill, which a poll can miss.
    drop = generate_demo(data, scale=30)
    civic = set()
    for page in drop.rglob("*.json"):
        civic.update(re.findall(r'"civicNo":\s*\{\s*"value":\s*"([^"]+)"', page.read_text(encoding="utf-8")))
    assert len(civic) > 10_000
    warehouse = tmp_path / "wh" / "warehouse.duckdb"
    args = [
        "-m",
        "skolon_pipeline.cli",
        "run",
        "--as-of",
        str(DEMO_NIGHT),
        "--data-dir",
        str(data),
        "--warehouse",
        str(warehouse),
        "--export-dir",
        str(tmp_path / "exports"),
    ]
    spill = warehouse.parent / "staging" / str(DEMO_NIGHT) / "lindby.duckdb.tmp"
    run = subprocess.Popen(
        [sys.executable, *args],
        env={**_env(), "SKOLON_DUCKDB_MEMORY_LIMIT": "160MB"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(
        lambda: (spill.is_dir() and any(spill.iterdir())) or run.poll() is not None, RUN_TIMEOUT, "the extract to spill"
    )
    assert run.poll() is None, "the extract did not spill"
    os.killpg(run.pid, 9)
    run.wait(timeout=30)
    assert spill.is_dir()  # the attack: the spill of a killed extract stays behind ...

    last = subprocess.run([sys.executable, *args], env=_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert last.returncode == 0, last.stderr
    # ... until the next run: no spill folder, and no civic number in clear in any file beside the warehouse.
    assert not list(warehouse.parent.rglob("*.tmp"))
    pattern = re.compile(rb"[0-9]{8}[0-9A-Z]{4}")
    for path in warehouse.parent.rglob("*"):
        if path.is_file():
            found = {m.decode() for m in pattern.findall(path.read_bytes())} & civic
            assert not found, f"{path} holds {len(found)} civic numbers"
