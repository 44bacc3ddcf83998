"""The warehouse opens in the analysts' tools, not only in the pipeline's own DuckDB: the DuckDB CLI from the
package registry (`pip install duckdb-cli`, 1.5.x: an older storage reader than the pipeline's DuckDB 2.0) reads
`roster.users` from the published file, read-only, as docs/analysts.md shows."""

from __future__ import annotations

import shutil
import subprocess
import sys

import duckdb

from skolon_pipeline import duck


def _duckdb_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "duckdb_cli", *args], capture_output=True, text=True, timeout=120)


def test_the_duckdb_cli_from_the_package_registry_reads_the_published_warehouse(demo_warehouse, tmp_path):
    version = _duckdb_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("v1.5."), version.stdout + version.stderr
    copy = tmp_path / "warehouse.duckdb"  # the CLI's own process, on the file as an analyst copies it
    shutil.copy(demo_warehouse, copy)
    proc = _duckdb_cli(
        "-readonly", "-csv", str(copy), "-c", "SELECT role, count(*) AS n FROM roster.users GROUP BY role ORDER BY role"
    )
    assert proc.returncode == 0, proc.stderr
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        expected = con.execute("SELECT role, count(*) FROM roster.users GROUP BY role ORDER BY role").fetchall()
    assert proc.stdout.split() == ["role,n", *(f"{role},{n}" for role, n in expected)]


def test_a_file_in_duckdbs_own_newest_format_is_what_it_could_not_read(tmp_path):
    # Why STORAGE_COMPATIBILITY_VERSION exists: without it the CLI refuses the file (the test above would fail).
    newest = tmp_path / "newest.duckdb"
    with duckdb.connect(str(newest), config={"storage_compatibility_version": "latest"}) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert _duckdb_cli("-readonly", str(newest), "-c", "SELECT * FROM t").returncode != 0
    ours = tmp_path / "ours.duckdb"
    with duck.connect(ours) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert _duckdb_cli("-readonly", "-csv", str(ours), "-c", "SELECT * FROM t").stdout.split() == ["x", "1"]


def test_a_nights_working_files_are_in_duckdbs_own_format_and_the_warehouse_is_not(tmp_path):
    # Staging and rules files are read only by the pipeline (docs/analysts.md): DuckDB 2.0's format, faster to
    # write; the warehouse and its copies (duck.connect) stay in STORAGE_COMPATIBILITY_VERSION's.
    working = tmp_path / "staging.duckdb"
    with duck.session(working) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert _duckdb_cli("-readonly", str(working), "-c", "SELECT * FROM t").returncode != 0
    with duckdb.connect(str(working), read_only=True) as con:
        assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
