"""Several sources in one installation: a broken source never takes the others down and never makes its own
users disappear (carried over, flagged stale); ids are namespaced per source unless global; the same global id
in two sources is one user; the same e-mail on two people across sources is DUPLICATE_EMAIL."""

from __future__ import annotations

import copy
import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from skolon_pipeline import cli, night
from skolon_pipeline.config import Settings, load_installation
from skolon_pipeline.definitions import build_defs
from skolon_pipeline.defs.schedules import NIGHTLY_JOB
from skolon_pipeline.defs.sources import READABLE_CHECK
from skolon_pipeline_tests.conftest import Night
from skolon_pipeline_tests.oneroster_drop import OneRosterDrop, oneroster_source
from skolon_pipeline_tests.registry import Registry, write_sources

REPO = Path(__file__).resolve().parents[1]
SS = {"id": "kommun", "format": "ss12000", "path": "registries/kommun"}
OR = oneroster_source("friskola")


@pytest.fixture
def installation(tmp_path):
    """A municipal SS12000 registry and an independent school's OneRoster export."""
    data = tmp_path / "data"
    reg = Registry("kommun")
    school = reg.school()
    klass = reg.group(school, members=[reg.student(school)])
    teacher, _ = reg.teach(school, klass)
    drop = OneRosterDrop()
    ids = drop.basic()
    write = {}

    def write_night(date: str, broken: bool = False, broken_ss12000: bool = False):
        ss_drop = reg.write(data, drop_date=date, source_id="kommun")
        if broken_ss12000:
            (ss_drop / "persons.json").write_text('{"data": [', encoding="utf-8")  # a half-written export
        path = drop.write(data / "registries" / "friskola" / date)
        if broken:
            (path / "users.csv").write_text("sourcedId,status\nx,\n", encoding="utf-8")
        write_sources(data, [SS, OR])

    write["night"] = write_night
    settings = Settings(data, tmp_path / "warehouse.duckdb", tmp_path / "exports")
    return {"reg": reg, "drop": drop, "ids": ids, "teacher": teacher, "write": write_night, "settings": settings}


def _run(settings: Settings, date: str) -> tuple[Night, night.Evaluated]:
    as_of = dt.date.fromisoformat(date)
    evaluated = night.run_night(load_installation(settings.data_dir), as_of, settings.warehouse, settings.staging_dir)
    return Night(settings.warehouse, as_of, evaluated.conservation), evaluated


@pytest.mark.slow
def test_a_broken_source_is_carried_over_and_the_other_publishes(installation):
    settings, ids = installation["settings"], installation["ids"]
    installation["write"]("2026-11-01")
    first, evaluated = _run(settings, "2026-11-01")
    assert not evaluated.failed
    or_users = {u for u in first.users() if u.startswith("friskola:")}
    assert or_users == {f"friskola:{ids['teacher']}", f"friskola:{ids['student']}", f"friskola:{ids['student2']}"}

    # The SS12000 registry gains a student; the OneRoster export breaks.
    reg = installation["reg"]
    new_student = reg.student(reg.organisations[1]["id"])
    installation["write"]("2026-11-02", broken=True)
    second, evaluated = _run(settings, "2026-11-02")
    assert [f.source_id for f in evaluated.failed] == ["friskola"]
    assert "required header 'enabledUser' is missing" in evaluated.failed[0].message
    assert new_student["id"] in second.users()  # the good source published
    rows = second.query("SELECT user_id, stale_since FROM nightly.users WHERE as_of = ?", [second.as_of])
    stale = dict(rows)
    assert {u for u in stale if u.startswith("friskola:")} == or_users
    assert {stale[u] for u in or_users} == {dt.date(2026, 11, 1)}
    assert stale[new_student["id"]] is None
    for table in ("memberships", "groups", "school_affiliations", "schools"):
        carried = second.query(
            f"SELECT count(*), min(stale_since) FROM nightly.{table} WHERE as_of = ? AND source_id = 'friskola'",
            [second.as_of],
        )[0]
        before = first.query(
            f"SELECT count(*) FROM nightly.{table} WHERE as_of = ? AND source_id = 'friskola'", [first.as_of]
        )[0][0]
        assert carried == (before, dt.date(2026, 11, 1)), table
    warning = second.query(
        "SELECT detail FROM nightly.warnings WHERE as_of = ? AND code = 'SOURCE_FAILED'", [second.as_of]
    )
    assert (
        len(warning) == 1 and "users.csv" in warning[0][0] and "roster of 2026-11-01 is carried over" in warning[0][0]
    )

    # Still broken the next night: stale since the last night it was fresh, not since yesterday.
    installation["write"]("2026-11-03", broken=True)
    third, _ = _run(settings, "2026-11-03")
    assert set(third.query("SELECT DISTINCT stale_since FROM roster.users WHERE source_id = 'friskola'")) == {
        (dt.date(2026, 11, 1),)
    }
    # Fixed: fresh again.
    installation["write"]("2026-11-04")
    fourth, evaluated = _run(settings, "2026-11-04")
    assert not evaluated.failed
    assert fourth.query("SELECT count(*) FROM roster.users WHERE stale_since IS NOT NULL") == [(0,)]


@pytest.mark.slow
def test_a_broken_ss12000_source_is_carried_over_and_the_oneroster_source_publishes(installation):
    settings, drop = installation["settings"], installation["drop"]
    installation["write"]("2026-11-01")
    first, _ = _run(settings, "2026-11-01")
    kommun_before = set(
        first.query("SELECT user_id, role FROM nightly.users WHERE as_of = ? AND source_id = 'kommun'", [first.as_of])
    )
    school = drop.rows["orgs"][1]["sourcedId"]
    newcomer = drop.user("student", school, "Nora", "Ny")
    installation["write"]("2026-11-02", broken_ss12000=True)
    second, evaluated = _run(settings, "2026-11-02")
    assert [f.source_id for f in evaluated.failed] == ["kommun"] and "persons.json" in evaluated.failed[0].message
    assert f"friskola:{newcomer}" in second.users()
    assert (
        set(
            second.query(
                "SELECT user_id, role FROM roster.users WHERE source_id = 'kommun' AND stale_since = DATE '2026-11-01'"
            )
        )
        == kommun_before
    )


def test_a_teacher_in_two_sources_is_one_user_with_both_affiliations(tmp_path):
    data = tmp_path / "data"
    kommun = Registry("kommun")
    school_a = kommun.school("Kommunskolan", "11111111")
    klass_a = kommun.group(school_a, members=[kommun.student(school_a)], name="7A")
    teacher, _ = kommun.teach(school_a, klass_a)
    friskola = Registry("friskola")
    school_b = friskola.school("Friskolan", "22222222")
    klass_b = friskola.group(school_b, members=[friskola.student(school_b)], name="8B")
    person_b = copy.deepcopy(teacher)  # the same person (global id) with a duty at the other school
    friskola.persons.append(person_b)
    duty_b = friskola.duty(person_b, school_b)
    friskola.activity(school_b, [klass_b], [duty_b])
    # the independent school's registry also sends the municipal school unit (without its authority)
    friskola.organisations.append(copy.deepcopy(next(o for o in kommun.organisations if o["id"] == school_a)))
    # and two different people with the same address, one in each source
    clash_a = kommun.student(school_a, emails=[{"value": "same@skola.test", "type": "Skola elev"}])
    clash_b = friskola.student(school_b, emails=[{"value": "SAME@skola.test", "type": "Skola elev"}])
    kommun.write(data, "2026-11-01", source_id="kommun")
    friskola.write(data, "2026-11-01", source_id="friskola")
    write_sources(data, [SS, {"id": "friskola", "format": "ss12000", "path": "registries/friskola"}])
    settings = Settings(data, tmp_path / "warehouse.duckdb", tmp_path / "exports")
    n, evaluated = _run(settings, "2026-11-01")
    assert not any(g["missing"] for g in evaluated.conservation.values())

    assert n.query("SELECT count(*), min(role) FROM roster.users WHERE user_id = ?", [teacher["id"]]) == [
        (1, "teacher")
    ]
    assert sorted(n.query("SELECT school_id, source_id, organisation_name FROM roster.schools")) == sorted(
        [(school_a, "kommun", "Testby kommun"), (school_b, "friskola", "Testby kommun")]
    )
    assert set(
        n.query("SELECT school_id, role, source_id FROM roster.school_affiliations WHERE user_id = ?", [teacher["id"]])
    ) == {(school_a, "teacher", "kommun"), (school_b, "teacher", "friskola")}
    assert {(g, r) for g, u, r in n.memberships() if u == teacher["id"]} == {
        (klass_a["id"], "teacher"),
        (klass_b["id"], "teacher"),
    }
    assert (
        n.exclusion(clash_a["id"], "DUPLICATE_EMAIL")["detail"] == f"the same school e-mail is used by {clash_b['id']}"
    )
    assert n.reasons(clash_b["id"]) == {"DUPLICATE_EMAIL"}


@pytest.mark.slow
def test_oneroster_ids_are_namespaced_unless_declared_global(tmp_path):
    data = tmp_path / "data"
    for source_id in ("a", "b"):
        drop = OneRosterDrop()
        drop.basic()  # the same sourcedIds in both exports: different people
        drop.rows["users"][0]["email"] = f"teacher@{source_id}.test"
        drop.rows["users"][1]["email"] = f"s1@{source_id}.test"
        drop.rows["users"][2]["email"] = f"s2@{source_id}.test"
        drop.write(data / "registries" / source_id / "2026-11-01")
    write_sources(data, [oneroster_source("a"), oneroster_source("b")])
    settings = Settings(data, tmp_path / "warehouse.duckdb", tmp_path / "exports")
    n, _ = _run(settings, "2026-11-01")
    assert len(n.users()) == 6 and all(u.startswith(("a:", "b:")) for u in n.users())
    write_sources(data, [oneroster_source("a", global_ids=True), oneroster_source("b", global_ids=True)])
    merged, _ = _run(settings, "2026-11-01")
    assert len(merged.users()) == 3 and not any(":" in u for u in merged.users())


# ── Dagster and the command line ───────────────────────────────────────────────────────────────────────


@pytest.mark.slow
def test_dagster_run_shows_the_failed_source_and_publishes_the_other(installation):
    settings = installation["settings"]
    installation["write"]("2026-11-01")
    defs = build_defs(settings)
    job = defs.resolve_job_def(NIGHTLY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    assert job.execute_in_process(partition_key="2026-11-01", instance=instance).success
    installation["write"]("2026-11-02", broken=True)
    result = job.execute_in_process(partition_key="2026-11-02", instance=instance, raise_on_error=False)
    assert not result.success
    failed_steps = {e.step_key for e in result.all_events if e.is_step_failure}
    assert failed_steps == {"diagnostics__sources"}
    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    readable = checks[("extract/friskola", READABLE_CHECK)]
    assert not readable.passed and readable.severity == dg.AssetCheckSeverity.ERROR
    assert checks[("extract/kommun", READABLE_CHECK)].passed
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT max(as_of) FROM nightly.nights").fetchone()[0] == dt.date(2026, 11, 2)
        assert (
            con.execute(
                "SELECT count(*) FROM roster.users WHERE source_id = 'friskola' AND stale_since = DATE '2026-11-01'"
            ).fetchone()[0]
            == 3
        )


@pytest.mark.slow
def test_cli_exits_with_its_own_code_naming_the_failed_source(installation):
    settings = installation["settings"]
    installation["write"]("2026-11-01")
    installation["write"]("2026-11-02", broken=True)
    env = {
        "SKOLON_DATA_DIR": str(settings.data_dir),
        "SKOLON_WAREHOUSE": str(settings.warehouse),
        "SKOLON_EXPORT_DIR": str(settings.export_dir),
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
    }
    for date, code in (("2026-11-01", 0), ("2026-11-02", cli.EXIT_SOURCE_FAILED)):
        proc = subprocess.run(
            [sys.executable, "-m", "skolon_pipeline.cli", "run", "--as-of", date, "--executor", "in_process"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == code, proc.stdout + proc.stderr
    assert "published, but a source FAILED" in proc.stderr
    assert "source 'friskola'" in proc.stderr and "users.csv" in proc.stderr
