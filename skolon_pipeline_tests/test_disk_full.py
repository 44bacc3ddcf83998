"""A full warehouse volume (a small tmpfs): the night fails naming the cause, the published night stays whole
and readable, and the next night after space is freed publishes (issue 18, item 4)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from skolon_pipeline import night
from skolon_pipeline.config import load_installation
from skolon_pipeline.demo import DEMO_NIGHT
from skolon_pipeline.publish import snapshot

DEMO_DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def small_volume(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(volume)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)


def _fill(volume: Path, leave: int) -> Path:
    """Fills the volume until only about `leave` bytes are free."""
    filler = volume / "filler"
    free = shutil.disk_usage(volume).free
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


@pytest.mark.slow
def test_a_full_warehouse_volume_fails_the_night_and_loses_nothing(tmp_path, small_volume):
    installation = load_installation(DEMO_DATA)
    warehouse = small_volume / "warehouse.duckdb"
    staging = tmp_path / "staging"  # the staging volume has room; the warehouse volume fills up
    night.run_night(installation, DEMO_NIGHT, warehouse, staging)
    published = warehouse.read_bytes()

    filler = _fill(small_volume, leave=256 * 1024)
    second = DEMO_NIGHT + dt.timedelta(days=1)
    with pytest.raises(Exception) as failed:
        night.run_night(installation, second, warehouse, staging)
    message = str(failed.value)
    assert "No space left on device" in message, message
    assert "cannot rollback" not in message and "no transaction is active" not in message
    # The published night is exactly as it was, and readable; nothing of the failed write is left.
    assert warehouse.read_bytes() == published
    with snapshot.connect_published(warehouse) as con:
        assert con.execute("SELECT max(as_of), count(*) FROM nightly.nights").fetchone() == (DEMO_NIGHT, 1)
        assert con.execute("SELECT count(*) FROM roster.users").fetchone()[0] > 400
    assert sorted(p.name for p in small_volume.iterdir()) == ["filler", "warehouse.duckdb"]

    filler.unlink()  # space is freed: the next run publishes
    night.run_night(installation, second, warehouse, staging)
    with snapshot.connect_published(warehouse) as con:
        assert con.execute("SELECT max(as_of) FROM nightly.nights").fetchone()[0] == second


@pytest.mark.slow
def test_a_full_staging_volume_fails_the_source_and_loses_nothing(tmp_path, small_volume):
    installation = load_installation(DEMO_DATA)
    warehouse = tmp_path / "warehouse.duckdb"  # the warehouse volume has room; the staging volume fills up
    staging = small_volume / "staging"
    night.run_night(installation, DEMO_NIGHT, warehouse, staging)
    published = warehouse.read_bytes()
    with snapshot.connect_published(warehouse) as con:
        users = con.execute("SELECT count(*) FROM roster.users").fetchone()[0]

    filler = _fill(small_volume, leave=64 * 1024)
    second = DEMO_NIGHT + dt.timedelta(days=1)
    with pytest.raises(Exception) as failed:
        night.run_night(installation, second, warehouse, staging)
    message = str(failed.value)
    # The one line names the source and the cause.
    assert "lindby" in message and "No space left on device" in message, message
    assert warehouse.read_bytes() == published  # nothing published, nothing lost
    with snapshot.connect_published(warehouse) as con:
        assert con.execute("SELECT max(as_of), (SELECT count(*) FROM roster.users) FROM nightly.nights").fetchone() == (
            DEMO_NIGHT,
            users,
        )
    # What the failed night left of a civic-number-bearing staging file: nothing.
    assert not [p for p in (staging / second.isoformat()).rglob("*") if p.is_file() and p.suffix in {".duckdb", ".tmp"}]

    filler.unlink()
    night.run_night(installation, second, warehouse, staging)
    with snapshot.connect_published(warehouse) as con:
        assert con.execute("SELECT max(as_of) FROM nightly.nights").fetchone()[0] == second


@pytest.mark.slow
def test_a_full_export_volume_fails_the_export_and_keeps_last_nights_files(tmp_path, small_volume):
    from python_calamine import CalamineWorkbook

    from skolon_pipeline.exports.validation_file import write_validation_files

    installation = load_installation(DEMO_DATA)
    warehouse, staging, exports = tmp_path / "warehouse.duckdb", tmp_path / "staging", small_volume / "exports"
    night.run_night(installation, DEMO_NIGHT, warehouse, staging)
    _, first = write_validation_files(warehouse, exports, as_of=DEMO_NIGHT)
    before = {p: p.read_bytes() for p in exports.rglob("*") if p.is_file()}
    assert any(p.suffix == ".xlsx" for p in before)

    second = DEMO_NIGHT + dt.timedelta(days=1)
    night.run_night(installation, second, warehouse, staging)
    filler = _fill(small_volume, leave=16 * 1024)
    started = time.monotonic()
    with pytest.raises(OSError) as failed:
        write_validation_files(warehouse, exports, as_of=second)
    assert time.monotonic() - started < 60  # the workbook writer ends with the error, it never hangs
    assert "No space left on device" in str(failed.value)
    # Last night's files are whole: the same bytes, and the workbook opens in an independent reader.
    assert {p: p.read_bytes() for p in (exports / str(DEMO_NIGHT)).rglob("*") if p.is_file()} == before
    for vf in first:
        sheets = CalamineWorkbook.from_path(str(vf.xlsx)).sheet_names
        assert sheets and all(CalamineWorkbook.from_path(str(vf.xlsx)).get_sheet_by_name(s).to_python() for s in sheets)
    # No half-written file of the failed night is left to be mistaken for a validation file.
    assert not list((exports / str(second)).rglob("*.tmp"))

    filler.unlink()
    _, again = write_validation_files(warehouse, exports, as_of=second)
    assert all(vf.xlsx.is_file() for vf in again)


def _second_night_evaluated(tmp_path, volume):
    """The demo night published into a warehouse on `volume`, and the rules run for the night after it: the
    installation, the warehouse, the staging folder, the published file's bytes and the second night."""
    installation = load_installation(DEMO_DATA)
    warehouse = volume / "warehouse.duckdb"
    staging = tmp_path / "staging"
    night.run_night(installation, DEMO_NIGHT, warehouse, staging)
    published = warehouse.read_bytes()
    second = DEMO_NIGHT + dt.timedelta(days=1)
    night.evaluate_night(installation, second, staging, warehouse)
    return installation, warehouse, staging, published, second


@pytest.mark.slow
def test_a_full_warehouse_volume_fails_the_change_set_step_and_leaves_no_prepared_file(tmp_path, small_volume):
    """The Dagster steps' way, change_set (night.check, which prepares the night) then publish_night."""
    installation, warehouse, staging, published, second = _second_night_evaluated(tmp_path, small_volume)
    filler = _fill(small_volume, leave=256 * 1024)
    with pytest.raises(Exception, match="No space left on device"):
        night.check(installation, warehouse, staging, second, "r2")
    assert warehouse.read_bytes() == published
    assert sorted(p.name for p in small_volume.iterdir()) == ["filler", "warehouse.duckdb"]

    filler.unlink()
    assert not night.check(installation, warehouse, staging, second, "r2").blocks
    assert (small_volume / f"warehouse.duckdb.{second}.prepared").is_file()
    night.publish(installation, warehouse, night.rules_db(staging, second), second, "r2")
    assert sorted(p.name for p in small_volume.iterdir()) == ["warehouse.duckdb"]
    with snapshot.connect_published(warehouse) as con:
        assert con.execute("SELECT max(as_of) FROM nightly.nights").fetchone()[0] == second


@pytest.mark.slow
def test_room_for_the_copy_but_not_the_night_still_gives_the_verdict(tmp_path, small_volume, monkeypatch):
    """The change_set step copies the warehouse, but writing the night on the copy fills the disk: the verdict
    is still given (checked again without preparing), and publish_night fails naming the cause."""
    installation, warehouse, staging, published, second = _second_night_evaluated(tmp_path, small_volume)
    _fill(small_volume, leave=len(published) + 256 * 1024)
    from skolon_pipeline.publish import publish

    checks, check = [], publish._check

    def counted(*args):
        try:
            return check(*args)
        except Exception as exc:
            checks.append(str(exc))
            raise

    monkeypatch.setattr(publish, "_check", counted)
    assert not night.check(installation, warehouse, staging, second, "r2").blocks
    assert len(checks) == 1 and "No space left on device" in checks[0]  # preparing failed, checked again
    assert sorted(p.name for p in small_volume.iterdir()) == ["filler", "warehouse.duckdb"]
    with pytest.raises(Exception, match="No space left on device"):
        night.publish(installation, warehouse, night.rules_db(staging, second), second, "r2")
    assert warehouse.read_bytes() == published
    assert sorted(p.name for p in small_volume.iterdir()) == ["filler", "warehouse.duckdb"]
