"""The night's change set and guard verdict computed once: the change_set step (night.check) publishes a night
it lets through on its private copy and keeps it as a prepared warehouse, which the publish step (night.publish)
installs; whenever the published warehouse or the rules' output changed in between, or another run prepared
it, the publish step publishes in full, and no prepared file outlives its use (performance issue 17)."""

from __future__ import annotations

import datetime as dt
import os

import duckdb
import pytest

from skolon_pipeline import night
from skolon_pipeline.config import load_installation
from skolon_pipeline.publish import publish, snapshot
from skolon_pipeline_tests.registry import Registry, one_class_school

pytestmark = pytest.mark.slow  # several nights published one after another

D1, D2, D3 = dt.date(2026, 12, 1), dt.date(2026, 12, 2), dt.date(2026, 12, 3)


class Site:
    """A data folder, a warehouse and its staging folder; a night is evaluated, checked and published as the
    Dagster steps do it (change_set, then publish_night)."""

    def __init__(self, tmp_path, name: str):
        self.data_dir = tmp_path / name / "data"
        self.path = tmp_path / name / "wh" / "warehouse.duckdb"
        self.staging = tmp_path / name / "wh" / "staging"

    @property
    def installation(self):
        return load_installation(self.data_dir)

    def evaluate(self, reg: Registry, as_of: dt.date) -> None:
        reg.write(self.data_dir, drop_date=as_of.isoformat())
        night.evaluate_night(self.installation, as_of, self.staging, self.path)

    def check(self, as_of: dt.date, run_id: str, record: bool = True):
        return night.check(self.installation, self.path, self.staging, as_of, run_id, record=record)

    def publish(self, as_of: dt.date, run_id: str):
        return night.publish(self.installation, self.path, night.rules_db(self.staging, as_of), as_of, run_id)

    def night(self, reg: Registry, as_of: dt.date, run_id: str) -> None:
        self.evaluate(reg, as_of)
        assert not self.check(as_of, run_id).blocks
        self.publish(as_of, run_id)

    def left_beside(self) -> list[str]:
        """What lies beside the warehouse besides itself and the staging folder."""
        return sorted(
            p.name for p in self.path.parent.iterdir() if p.name not in {self.path.name, "staging", "pseudonym.key"}
        )

    def contents(self) -> dict[str, list[tuple]]:
        """Every table of the history and nightly schemas, without the wall-clock columns (published_at, ...)."""
        with duckdb.connect(str(self.path), read_only=True) as con:
            tables = con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ('history', 'nightly') "
                "ORDER BY ALL"
            ).fetchall()
            out = {}
            for schema, table in tables:
                cols = [
                    name
                    for name, kind in con.execute(
                        "SELECT column_name, data_type FROM duckdb_columns() "
                        "WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
                        [schema, table],
                    ).fetchall()
                    if not kind.startswith("TIMESTAMP")
                ]
                rows = con.execute(f'SELECT {", ".join(cols)} FROM "{schema}"."{table}"').fetchall()
                out[f"{schema}.{table}"] = sorted(rows, key=repr)
        return out


def _full_publish_count(monkeypatch) -> list[int]:
    calls = [0]
    original = publish.publish_night

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(publish, "publish_night", counted)
    return calls


def _second_night_evaluated(tmp_path) -> tuple[Registry, Site]:
    """A one-class school's night D1 published, then the rules run for D2 with one student more (not checked)."""
    reg, school, klass, students, _ = one_class_school()
    site = Site(tmp_path, "site")
    site.night(reg, D1, "r1")
    reg.student(school, given="Ny")
    site.evaluate(reg, D2)
    return reg, site


def test_a_night_published_through_the_prepared_warehouse_equals_a_full_publish(tmp_path, monkeypatch):
    reg, school, klass, students, _ = one_class_school()
    prepared, full = Site(tmp_path, "prepared"), Site(tmp_path, "full")
    nights = [D1, D2, D3]
    for n, as_of in enumerate(nights):
        if n == 1:  # a student leaves, another joins: removals, additions and updates
            reg.persons.remove(students[0])
            klass["groupMemberships"] = [m for m in klass["groupMemberships"] if m["person"]["id"] != students[0]["id"]]
            reg.student(school, given="Ny")
        if n == 2:
            reg.persons[-1]["givenName"] = "Nyare"
        for site in (prepared, full):
            site.evaluate(reg, as_of)
        run = f"run-{as_of}"
        assert not prepared.check(as_of, run).blocks
        assert snapshot.prepared_path(prepared.path, as_of.isoformat()).is_file()
        assert os.stat(snapshot.prepared_path(prepared.path, as_of.isoformat())).st_mode & 0o777 == 0o600
        with monkeypatch.context() as m:
            m.setattr(publish, "publish_night", lambda *a, **k: pytest.fail("published in full"))
            result = prepared.publish(as_of, run)
        assert result.published and result.counts["users"] > 0
        expected = night.publish(full.installation, full.path, night.rules_db(full.staging, as_of), as_of, run)
        assert result.counts == expected.counts
        assert prepared.contents() == full.contents()
        assert prepared.left_beside() == []


def test_a_prepared_warehouse_is_not_installed_once_the_published_one_changed(tmp_path, monkeypatch):
    reg, school, klass, students, _ = one_class_school()
    site, reference = Site(tmp_path, "site"), Site(tmp_path, "reference")
    site.night(reg, D1, "r1")
    reference.night(reg, D1, "r1")

    reg.student(school, given="Ny")
    site.evaluate(reg, D3)
    assert not site.check(D3, "r3").blocks  # prepared against the warehouse holding D1 only
    stale = snapshot.prepared_path(site.path, D3.isoformat())
    assert stale.is_file()
    # Another run publishes night D2 before this run's publish step (a backfill).
    site.night(reg, D2, "r2")
    assert not stale.exists()  # the new published file made it stale: its writer removed it
    calls = _full_publish_count(monkeypatch)
    site.publish(D3, "r3")
    assert calls == [1]  # published in full, against the warehouse that holds D2

    reference.night(reg, D2, "r2")
    reference.evaluate(reg, D3)
    reference.publish(D3, "r3")
    assert site.contents() == reference.contents()
    assert site.left_beside() == []


def test_a_prepared_warehouse_is_not_installed_after_the_rules_ran_again_or_for_another_run(tmp_path, monkeypatch):
    reg, site = _second_night_evaluated(tmp_path)
    site.check(D2, "r2")
    calls = _full_publish_count(monkeypatch)
    site.publish(D2, "another run")  # prepared by r2, not by this run
    assert calls == [1] and site.left_beside() == []

    site.check(D2, "r3")
    site.evaluate(reg, D2)  # the rules ran again: another output than the one prepared from
    site.publish(D2, "r3")
    assert calls == [2] and site.left_beside() == []


def test_a_held_night_leaves_no_prepared_file_and_is_never_published(tmp_path):
    reg, school, klass, students, _ = one_class_school()
    site = Site(tmp_path, "site")
    site.night(reg, D1, "r1")
    for s in students[:4]:
        reg.persons.remove(s)
    site.evaluate(reg, D2)
    assert site.check(D2, "r2").blocks
    assert site.left_beside() == []
    with pytest.raises(night.NightHeld):
        site.publish(D2, "r2")
    assert site.left_beside() == []
    with duckdb.connect(str(site.path), read_only=True) as con:
        assert con.execute("SELECT max(as_of) FROM nightly.nights").fetchone() == (D1,)

    # Approved, the night is let through: prepared, then installed.
    with snapshot.rewrite(site.path) as writer:
        publish.approve(writer.con, D2)
    assert not site.check(D2, "r3").blocks
    assert snapshot.prepared_path(site.path, D2.isoformat()).is_file()
    site.publish(D2, "r3")
    assert site.left_beside() == []
    with duckdb.connect(str(site.path), read_only=True) as con:
        assert con.execute("SELECT max(as_of) FROM nightly.nights").fetchone() == (D2,)
        assert con.execute("SELECT published_at IS NOT NULL FROM history.held_nights").fetchone() == (True,)


def test_a_dry_run_changes_nothing_and_prepares_nothing(tmp_path):
    _, site = _second_night_evaluated(tmp_path)
    before = site.path.read_bytes(), snapshot.identity(site.path)
    assert not site.check(D2, "dry", record=False).blocks
    assert (site.path.read_bytes(), snapshot.identity(site.path)) == before
    assert site.left_beside() == []


def test_a_failed_install_or_a_dead_run_leaves_no_prepared_file(tmp_path, monkeypatch):
    reg, school, klass, students, _ = one_class_school()
    site = Site(tmp_path, "site")
    site.night(reg, D1, "r1")
    published = site.path.read_bytes()
    reg.student(school, given="Ny")
    site.evaluate(reg, D2)
    site.check(D2, "r2")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(snapshot, "_install", full_disk)
        with pytest.raises(snapshot.SnapshotError, match="No space left on device"):
            site.publish(D2, "r2")
    assert site.path.read_bytes() == published and site.left_beside() == []

    # A run killed between its steps leaves its prepared file: the next run of the night replaces it, and the
    # CLI removes every one under its run lock.
    site.check(D2, "dead run")
    site.check(D2, "r3")
    site.publish(D2, "r3")
    assert site.left_beside() == []
    site.evaluate(reg, D3)
    site.check(D3, "dead run")
    assert site.left_beside() == [f"warehouse.duckdb.{D3}.prepared", f"warehouse.duckdb.{D3}.prepared.json"]
    assert snapshot.remove_prepared(site.path) == [snapshot.prepared_path(site.path, D3.isoformat())]
    assert site.left_beside() == []


def test_preparing_on_a_full_disk_still_gives_the_verdict(tmp_path, monkeypatch):
    _, site = _second_night_evaluated(tmp_path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot, "_keep_prepared", full_disk)
    assert not site.check(D2, "r2").blocks
    assert site.left_beside() == []
    monkeypatch.undo()
    site.publish(D2, "r2")  # in full
    with duckdb.connect(str(site.path), read_only=True) as con:
        assert con.execute("SELECT max(as_of) FROM nightly.nights").fetchone() == (D2,)


def test_runs_through_dagster_leave_no_prepared_file(tmp_path, monkeypatch, capsys):
    from skolon_pipeline import cli
    from skolon_pipeline_tests.registry import run_cli

    def beside() -> list[str]:
        wh = tmp_path / "wh"
        return sorted(
            p.name for p in wh.iterdir() if p.name.startswith("warehouse.duckdb.") and not p.name.endswith("lock")
        )

    reg, school, klass, students, _ = one_class_school()
    reg.write(tmp_path / "data", drop_date=D1.isoformat())
    calls = _full_publish_count(monkeypatch)
    assert run_cli(tmp_path, "run", D1) == 0
    assert calls == [0] and beside() == []  # published through the prepared warehouse

    reg.student(school, given="Ny")
    reg.write(tmp_path / "data", drop_date=D2.isoformat())
    with monkeypatch.context() as m:  # the publish step fails: a full disk when it renames
        m.setattr(snapshot, "_install", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
        assert run_cli(tmp_path, "run", D2) == cli.EXIT_FAILED
    assert "No space left on device" in capsys.readouterr().err
    assert beside() == []

    for s in students[:4]:
        reg.persons.remove(s)
    reg.write(tmp_path / "data", drop_date=D2.isoformat())
    assert run_cli(tmp_path, "run", D2) == cli.EXIT_HELD
    assert beside() == []
    assert run_cli(tmp_path, "approve", D2) == 0
    assert calls == [0] and beside() == []
    with duckdb.connect(str(tmp_path / "wh" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT max(as_of) FROM nightly.nights").fetchone() == (D2,)


def test_half_made_prepared_files_of_killed_runs_are_removed_by_the_next_writer(tmp_path):
    _, site = _second_night_evaluated(tmp_path)
    site.check(D2, "r2")  # a current prepared file: a live run between its steps
    # Killed while preparing: a copy renamed without its sidecar, a sidecar whose copy never came, the
    # sidecar's temporary file of a process that is gone.
    orphan = snapshot.prepared_path(site.path, D3.isoformat())
    orphan.write_bytes(b"half")
    lone = snapshot.prepared_path(site.path, "2026-12-04")
    snapshot._sidecar(lone).write_text('{"file": [1, 2, 3, 4]}')
    dead_tmp = site.path.with_name(f"{site.path.name}.{2**22 + 1}.writing.json")
    dead_tmp.write_text("{}")
    with snapshot.rewrite(site.path) as writer:  # any writer, here one that changes nothing
        writer.keep = False
    assert site.left_beside() == [f"warehouse.duckdb.{D2}.prepared", f"warehouse.duckdb.{D2}.prepared.json"]
    site.publish(D2, "r2")
    assert site.left_beside() == []
