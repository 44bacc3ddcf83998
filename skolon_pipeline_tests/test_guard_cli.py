"""The guard from the command line: a held night exits 3 and publishes nothing, `approve` publishes it,
`run --dry-run` shows the change set and publishes nothing."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from skolon_pipeline import cli
from skolon_pipeline_tests.registry import Registry, run_cli

pytestmark = pytest.mark.slow  # nights run through the CLI and Dagster

D1, D2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)


def _users(tmp_path) -> set[str]:
    with duckdb.connect(str(tmp_path / "wh" / "warehouse.duckdb"), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT user_id FROM roster.users").fetchall()}


def test_a_half_written_export_is_held_with_an_explanation_and_published_after_approve(tmp_path, capsys):
    reg = Registry()
    school = reg.school()
    students = [reg.student(school, given=f"Elev{i}") for i in range(10)]
    klass = reg.group(school, members=students)
    reg.teach(school, klass)
    reg.write(tmp_path / "data", drop_date=D1.isoformat())
    assert run_cli(tmp_path, "run", D1) == 0
    before = _users(tmp_path)
    assert len(before) == 11

    # The next drop was cut off: three students are missing from persons.json.
    for s in students[7:]:
        reg.persons.remove(s)
    klass["groupMemberships"] = klass["groupMemberships"][:7]
    reg.write(tmp_path / "data", drop_date=D2.isoformat())
    capsys.readouterr()

    assert run_cli(tmp_path, "run", D2, "--dry-run") == cli.EXIT_HELD
    out = capsys.readouterr().out
    assert "dry run, nothing published" in out and "users                +0 added, -3 removed" in out
    assert "WOULD HOLD" in out and "3 of 11 users (27%) would be removed" in out
    assert _users(tmp_path) == before
    with duckdb.connect(str(tmp_path / "wh" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM history.held_nights").fetchone() == (0,)

    assert run_cli(tmp_path, "run", D2) == cli.EXIT_HELD
    err = capsys.readouterr().err
    assert f"night {D2}: HELD by the mass-removal guard" in err
    assert "3 of 11 users (27%) would be removed, more than max_removal_share 10%" in err
    assert f"skolon-pipeline approve --as-of {D2}" in err
    for s in students:  # ids and counts only, never names
        assert s["givenName"] not in err
    assert _users(tmp_path) == before
    assert (tmp_path / "exports" / D1.isoformat()).is_dir()
    assert not (tmp_path / "exports" / D2.isoformat()).exists()
    with duckdb.connect(str(tmp_path / "wh" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT max(as_of) FROM nightly.nights").fetchone() == (D1,)
        assert sorted(
            r[0]
            for r in con.execute(
                "SELECT entity_id FROM history.held_changes WHERE entity_type = 'user' AND change = 'removed'"
            ).fetchall()
        ) == sorted(s["id"] for s in students[7:])

    assert run_cli(tmp_path, "approve", D1) == cli.EXIT_FAILED  # never held
    assert "was not held" in capsys.readouterr().err
    assert run_cli(tmp_path, "approve", D2) == 0
    assert f"changes since {D1}: users +0 -3 ~0, groups +0 -0 ~0, memberships +0 -3 ~0" in capsys.readouterr().out
    assert _users(tmp_path) == before - {s["id"] for s in students[7:]}
    assert (tmp_path / "exports" / D2.isoformat()).is_dir()
    assert run_cli(tmp_path, "run", D2) == 0  # an approved night stays approved


def test_dagster_change_set_counts_and_the_blocking_guard_skips_publishing(tmp_path):
    import dagster as dg

    from skolon_pipeline.config import Settings
    from skolon_pipeline.definitions import build_defs
    from skolon_pipeline.defs.guard import CHANGE_SET_KEY, REMOVAL_GUARD_CHECK
    from skolon_pipeline.defs.schedules import NIGHTLY_JOB

    reg = Registry()
    school = reg.school()
    students = [reg.student(school, given=f"Elev{i}") for i in range(10)]
    klass = reg.group(school, members=students)
    reg.teach(school, klass)
    reg.write(tmp_path / "data", drop_date=D1.isoformat())
    settings = Settings(tmp_path / "data", tmp_path / "wh" / "warehouse.duckdb", tmp_path / "exports")
    job = build_defs(settings).resolve_job_def(NIGHTLY_JOB)
    instance = dg.DagsterInstance.ephemeral()

    first = job.execute_in_process(partition_key=D1.isoformat(), instance=instance)
    (change_set,) = [
        m.materialization.metadata for m in first.get_asset_materialization_events() if m.asset_key == CHANGE_SET_KEY
    ]
    assert (change_set["user/added"].value, change_set["membership/added"].value, change_set["user/removed"].value) == (
        11,
        11,
        0,
    )

    for s in students[:4]:
        reg.persons.remove(s)
    reg.write(tmp_path / "data", drop_date=D2.isoformat())
    second = job.execute_in_process(partition_key=D2.isoformat(), instance=instance, raise_on_error=False)
    assert not second.success
    (check,) = [c for c in second.get_asset_check_evaluations() if c.check_name == REMOVAL_GUARD_CHECK]
    assert not check.passed
    assert check.metadata["testby/users_removed"].value == 4 and check.metadata["testby/users_before"].value == 11
    assert check.metadata["sample_ids_to_remove"].value["testby/user"] == sorted(s["id"] for s in students[:4])
    assert not [m for m in second.get_asset_materialization_events() if m.asset_key.path[0] in ("roster", "exports")]
    assert _users(tmp_path) == {u["id"] for u in reg.persons} | {s["id"] for s in students[:4]}
