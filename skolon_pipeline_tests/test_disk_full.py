"""A full warehouse volume (a small tmpfs): the night fails naming the cause, the published night stays whole
and readable, and the next night after space is freed publishes (issue 18, item 4)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
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
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(volume)],
                             capture_output=True, text=True)
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
