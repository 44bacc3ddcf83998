"""The published warehouse and the writer's copy; the run lock; causes in one line; escaped registry text."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

import duckdb
import pytest
from dagster._utils.error import SerializableErrorInfo

from skolon_pipeline import duck, runs, text
from skolon_pipeline.publish import snapshot


def _publish(path, value: int) -> None:
    with snapshot.rewrite(path) as writer:
        writer.con.execute("CREATE OR REPLACE TABLE t AS SELECT ? AS v, range AS i FROM range(1000)", [value])


def test_a_reader_keeps_its_night_while_the_warehouse_is_replaced(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    _publish(wh, 1)
    with snapshot.connect_published(wh) as reader:
        assert reader.execute("SELECT DISTINCT v FROM t").fetchall() == [(1,)]
        _publish(wh, 2)  # neither blocked by the open reader nor breaking it
        assert reader.execute("SELECT DISTINCT v, count(*) FROM t GROUP BY v").fetchall() == [(1, 1000)]
        with snapshot.connect_published(wh) as later:
            assert later.execute("SELECT DISTINCT v FROM t").fetchall() == [(2,)]
    assert oct(wh.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]  # no copy, log or spill left


def test_a_failing_writer_leaves_the_published_warehouse_as_it_was(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    _publish(wh, 1)
    before = wh.read_bytes()
    with pytest.raises(RuntimeError, match="boom"), snapshot.rewrite(wh) as writer:
        writer.con.execute("CREATE OR REPLACE TABLE t AS SELECT 2 AS v")
        raise RuntimeError("boom")
    assert wh.read_bytes() == before
    with snapshot.rewrite(wh) as writer:
        writer.con.execute("DROP TABLE t")
        writer.keep = False  # a dry run: computed, then discarded
    assert wh.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


def test_readers_get_a_clear_error_before_the_first_night(tmp_path):
    with pytest.raises(snapshot.WarehouseMissing, match="run `skolon-pipeline run` first"):
        snapshot.connect_published(tmp_path / "warehouse.duckdb")


def test_a_dead_writers_copy_is_removed_by_the_next_writer(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    _publish(wh, 1)
    # pid 2**22 + 1 is above Linux's pid_max default, so no live process has it
    dead = tmp_path / f"warehouse.duckdb.{2**22 + 1}.writing"
    dead.write_bytes(b"personal data")
    (tmp_path / f"{dead.name}.tmp").mkdir()
    live = tmp_path / f"warehouse.duckdb.{os.getppid()}.writing"  # a live process's copy is left alone
    live.write_bytes(b"x")
    _publish(wh, 2)
    assert not dead.exists() and not (tmp_path / f"{dead.name}.tmp").exists() and live.exists()


def test_an_old_warehouse_with_a_write_ahead_log_keeps_its_last_writes(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("SET checkpoint_threshold = '1GB'")
    con.execute("CREATE TABLE t AS SELECT 7 AS v")
    # Simulate a process that died before checkpointing: copy the file and its log as they are.
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "warehouse.duckdb").write_bytes(wh.read_bytes())
    (crashed / "warehouse.duckdb.wal").write_bytes((tmp_path / "warehouse.duckdb.wal").read_bytes())
    con.close()
    with snapshot.rewrite(crashed / "warehouse.duckdb") as writer:
        assert writer.con.execute("SELECT v FROM t").fetchall() == [(7,)]
    assert not (crashed / "warehouse.duckdb.wal").exists()
    with snapshot.connect_published(crashed / "warehouse.duckdb") as reader:
        assert reader.execute("SELECT v FROM t").fetchall() == [(7,)]


def test_a_second_run_refuses_in_one_line_naming_the_first(tmp_path, capsys):
    wh = tmp_path / "warehouse.duckdb"
    night = dt.date(2026, 12, 1)
    with runs.run_lock(wh, night, wait_seconds=0):
        started = time.monotonic()
        with pytest.raises(runs.RunRefused) as refused, runs.run_lock(wh, dt.date(2026, 12, 2), wait_seconds=1):
            pass
        assert 0.9 < time.monotonic() - started < 5
    message = str(refused.value)
    assert "\n" not in message
    assert f"night {night}" in message and f"process {os.getpid()}" in message and "still writing" in message
    assert "waiting up to 1 s for the run of night 2026-12-01" in capsys.readouterr().err


def test_a_second_run_waits_for_the_first(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    first_done = threading.Event()

    def first():
        with runs.run_lock(wh, dt.date(2026, 12, 1), wait_seconds=0):
            time.sleep(1.0)
        first_done.set()

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.2)
    with runs.run_lock(wh, dt.date(2026, 12, 2), wait_seconds=30):
        assert first_done.is_set()
    thread.join(timeout=10)


class _FailingCommit:
    """A connection whose COMMIT fails as on a full disk (DuckDB then ends the transaction itself)."""

    def __init__(self):
        self.active = False

    def execute(self, sql):
        if sql.startswith("BEGIN"):
            self.active = True
        elif sql == "COMMIT":
            self.active = False
            raise duckdb.IOException('IO Error: Could not write file "warehouse.duckdb.wal": No space left on device')
        elif sql == "ROLLBACK" and not self.active:
            raise duckdb.TransactionException("TransactionContext Error: cannot rollback - no transaction is active")


def test_a_failed_commit_reports_its_cause():
    with pytest.raises(duckdb.IOException, match="No space left on device"), duck.transaction(_FailingCommit()):
        pass


def test_a_step_failure_is_reported_by_its_cause_not_dagsters_wrapper():
    cause = SerializableErrorInfo(
        'duckdb.duckdb.IOException: IO Error: Could not set lock on file "/x/warehouse.duckdb": Conflicting lock\n',
        [],
        "IOException",
    )
    wrapper = SerializableErrorInfo(
        'dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "publish_night":\n',
        [],
        "DagsterExecutionStepExecutionError",
        cause=cause,
    )
    assert runs.error_line(wrapper) == 'IO Error: Could not set lock on file "/x/warehouse.duckdb": Conflicting lock'
    failure = SerializableErrorInfo(
        "dagster._core.definitions.events.Failure: source 'a': file x.zip: encrypted\n", [], "Failure"
    )
    assert runs.error_line(failure) == "source 'a': file x.zip: encrypted"
    assert runs.error_line(SerializableErrorInfo("builtins.KeyError: 'x'\n", [], "KeyError")) == "KeyError: 'x'"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Anna\x1b[2J\x1b[1;1HHacked", "Anna\\x1b[2J\\x1b[1;1HHacked"),
        ("Bo\x9b31m", "Bo\\x9b31m"),  # C1 CSI
        ("Eva\u202egpj.exe", "Eva\\u202egpj.exe"),  # bidi override
        ("line\u2028two\x85three\rfour\nfive", "line\\u2028two\\x85three\\x0dfour\\x0afive"),
        ("Åsa Öberg-Ünal\tok", "Åsa Öberg-Ünal\tok"),
    ],
)
def test_registry_text_is_shown_with_control_characters_escaped(raw, shown):
    assert text.printable(raw) == shown


def test_one_line_takes_the_first_line_and_bounds_it():
    assert text.one_line("\n  first \x1b[31m\nsecond") == "first \\x1b[31m"
    assert len(text.one_line("x" * 10_000)) == text.MAX_LINE
