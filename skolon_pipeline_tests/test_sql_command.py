"""`skolon-pipeline sql`: a query or a prompt on the published warehouse for people without the DuckDB CLI; it
reads and never writes (neither the warehouse nor any other file), and registry text never acts on the terminal."""

from __future__ import annotations

import hashlib
import io

import duckdb
import pytest

from skolon_pipeline import cli


def _sql(capsys, warehouse, *args, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(["sql", *args, "--warehouse", str(warehouse)])
    out, err = capsys.readouterr()
    return code, out, err


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_query_prints_the_rows_an_analyst_asked_for(demo_warehouse, capsys):
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        expected = dict(con.execute("SELECT role, count(*) FROM roster.users GROUP BY 1").fetchall())
    code, out, _ = _sql(capsys, demo_warehouse, "SELECT role, count(*) AS n FROM roster.users GROUP BY 1 ORDER BY 1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split("|")[0].strip() == "role" and lines[0].split("|")[1].strip() == "n"
    shown = {row.split("|")[0].strip(): int(row.split("|")[1]) for row in lines[2:-1]}
    assert shown == expected
    assert lines[-1] == f"({len(expected)} rows)"


def test_a_long_result_is_cut_in_the_table_and_whole_in_csv(demo_warehouse, capsys):
    code, out, _ = _sql(capsys, demo_warehouse, "SELECT range AS n, NULL AS nothing FROM range(1500)")
    assert code == 0 and out.splitlines()[-1] == "(1500 rows; 500 not shown: --csv prints every row)"
    assert len(out.splitlines()) == 2 + 1000 + 1
    code, out, _ = _sql(capsys, demo_warehouse, "SELECT range AS n, NULL AS nothing FROM range(1500)", "--csv")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "n,nothing" and len(lines) == 1501 and lines[-1] == "1499,"


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE roster.mine AS SELECT 1",
        "DELETE FROM history.users",
        "COPY (SELECT * FROM roster.users) TO '{out}'",
        "ATTACH '{out}' AS other",
        "SELECT * FROM read_csv('{out}')",
        "SET enable_external_access = true",
    ],
)
def test_nothing_is_written_or_read_beside_the_warehouse(demo_warehouse, capsys, tmp_path, statement):
    before = _digest(demo_warehouse)
    code, out, err = _sql(capsys, demo_warehouse, statement.format(out=tmp_path / "leak.csv"))
    assert code == 1 and out == ""
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "leak.csv").exists()
    assert _digest(demo_warehouse) == before


def test_the_prompt_reads_statements_until_quit_and_goes_on_after_an_error(demo_warehouse, capsys, monkeypatch):
    session = (
        "SELECT count(*) AS users\nFROM roster.users;\n"
        "SELECT no_such_column FROM roster.users;\n"
        ".tables\n"
        "SELECT 'after the error' AS still;\n"
        ".quit\n"
        "SELECT 'never read';\n"
    )
    code, out, err = _sql(capsys, demo_warehouse, stdin=session, monkeypatch=monkeypatch)
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        users = con.execute("SELECT count(*) FROM roster.users").fetchone()[0]
    assert code == 0
    assert f"{users}" in out.split("(1 row)")[0]
    assert "no_such_column" in err and len(err.splitlines()) == 1
    assert "roster.users" in out and "history.changes" in out  # .tables
    assert "after the error" in out and "never read" not in out


def test_a_statement_piped_in_that_fails_ends_with_exit_1(demo_warehouse, capsys, monkeypatch):
    code, _, err = _sql(capsys, demo_warehouse, stdin="SELECT nope;\n", monkeypatch=monkeypatch)
    assert code == 1 and "nope" in err


def test_registry_text_never_acts_on_the_terminal(demo_warehouse, capsys):
    code, out, _ = _sql(capsys, demo_warehouse, "SELECT chr(27) || '[2J' || chr(8238) || 'gpj.exe' AS name")
    assert code == 0 and "\\x1b[2J\\u202egpj.exe" in out and "\x1b" not in out and "\u202e" not in out


def test_without_a_warehouse_it_says_what_to_run(tmp_path, capsys):
    code, _, err = _sql(capsys, tmp_path / "nothing.duckdb", "SELECT 1")
    assert code == 1 and "skolon-pipeline run" in err
