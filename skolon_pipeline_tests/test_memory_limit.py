"""A night's DuckDB memory is bounded by SKOLON_DUCKDB_MEMORY_LIMIT: beyond it DuckDB spills to disk, and the
roster that comes out is the same."""

from __future__ import annotations

import gc
from pathlib import Path

import duckdb
import pytest

from skolon_pipeline import duck, night
from skolon_pipeline.config import Settings, load_installation
from skolon_pipeline.demo import DEMO_NIGHT, generate_demo


def _roster(tmp_path: Path, data: Path, name: str) -> list[tuple]:
    settings = Settings(data, tmp_path / name / "warehouse.duckdb", tmp_path / name / "exports")
    night.run_night(load_installation(data), DEMO_NIGHT, settings.warehouse, settings.staging_dir)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return con.execute(
            """SELECT 'user', user_id, role FROM roster.users UNION ALL
               SELECT 'membership', group_id || '/' || user_id, role FROM roster.memberships UNION ALL
               SELECT 'exclusion', record_id, reason_code FROM diagnostics.exclusions ORDER BY ALL"""
        ).fetchall()


def test_connections_take_the_configured_limit(monkeypatch):
    monkeypatch.setenv(duck.MEMORY_LIMIT_ENV, "123MB")
    with duck.connect() as con:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit.startswith(("117", "123"))  # DuckDB shows MiB


@pytest.mark.slow
def test_a_night_under_a_small_limit_gives_the_same_roster(tmp_path, monkeypatch):
    data = tmp_path / "data"
    generate_demo(data)
    monkeypatch.setenv(duck.MEMORY_LIMIT_ENV, "3GB")
    roomy = _roster(tmp_path, data, "roomy")
    monkeypatch.setenv(duck.MEMORY_LIMIT_ENV, "96MB")
    tight = _roster(tmp_path, data, "tight")
    assert len(roomy) > 1000
    assert tight == roomy


def test_an_in_memory_connection_spills_into_a_private_folder_of_its_own(tmp_path, monkeypatch):
    """The readers' in-memory databases (exports, explain, the School Admin) spill names and e-mail addresses;
    DuckDB's default would put them in `.tmp` of whatever folder the process runs in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(duck.MEMORY_LIMIT_ENV, "32MB")
    con = duck.connect()
    folder = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    other = duck.connect()
    assert Path(other.execute("SELECT current_setting('temp_directory')").fetchone()[0]) != folder
    other.close()
    con.execute("SET threads = 1")
    # a table larger than the limit: its blocks are written to the spill folder while the connection lives
    con.execute("CREATE TEMP TABLE big AS SELECT md5(i::VARCHAR) AS m FROM range(1000000) r(i) ORDER BY m")
    assert con.execute("SELECT count(DISTINCT m) FROM big").fetchone()[0] == 1_000_000
    assert [f for f in folder.iterdir() if f.stat().st_size > 0]  # it did spill, there
    assert not folder.is_relative_to(tmp_path) and folder.stat().st_mode & 0o777 == 0o700
    assert list(tmp_path.iterdir()) == []  # nothing in the working directory
    con.close()
    del con
    gc.collect()
    assert not folder.exists()
