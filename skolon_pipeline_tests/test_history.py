"""History intervals, nightly change sets, the mass-removal guard and removal holds, over several nights."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import random
import shutil

import duckdb
import pytest

from skolon_pipeline import night
from skolon_pipeline.config import load_installation
from skolon_pipeline.exports.validation_file import write_validation_files
from skolon_pipeline.publish import history, publish, tables, warehouse
from skolon_pipeline.publish.guard import Policies
from skolon_pipeline_tests.registry import Registry, one_class_school

pytestmark = pytest.mark.slow  # several nights published one after another

D1, D2, D3 = dt.date(2026, 12, 1), dt.date(2026, 12, 2), dt.date(2026, 12, 3)


def _drop_student(reg: Registry, klass: dict, student: dict) -> None:
    """The student leaves the registry export entirely."""
    reg.persons.remove(student)
    klass["groupMemberships"] = [m for m in klass["groupMemberships"] if m["person"]["id"] != student["id"]]


class Warehouse:
    def __init__(self, tmp_path, rules: dict | None = None):
        self.data_dir = tmp_path / "data"
        self.path = tmp_path / "wh" / "warehouse.duckdb"
        self.staging = tmp_path / "wh" / "staging"
        self.rules = rules

    def drop(self, reg: Registry, drop_date: dt.date) -> None:
        reg.write(self.data_dir, drop_date=drop_date.isoformat(), rules=self.rules)

    def run(self, as_of: dt.date) -> None:
        night.run_night(load_installation(self.data_dir), as_of, self.path, self.staging)

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def snapshot(self) -> dict[str, list[tuple]]:
        """Every roster/diagnostics view, as an analyst would read it tonight."""
        return {
            view: sorted(self.query(f"SELECT * FROM {view}"), key=repr) for view in (t.view for t in tables.PUBLISHED)
        }

    def as_of(self, d: dt.date) -> dict[str, list[tuple]]:
        """The same views rebuilt for night `d` from the history macros (as_of added back)."""
        return {
            view: sorted(self.query(f"SELECT DATE '{d}' AS as_of, * FROM history.{table}_as_of(DATE '{d}')"), key=repr)
            for table, view in ((t.name, t.view) for t in tables.PUBLISHED)
        }

    def recorded_counts(self, d: dt.date) -> dict[str, tuple[int, int]]:
        """Per source, the (users, memberships) recorded for night `d` when it was published."""
        rows = self.query("SELECT source_id, users, memberships FROM history.night_counts WHERE as_of = ?", [d])
        return {source: (users, memberships) for source, users, memberships in rows}

    def history_counts(self, d: dt.date) -> dict[str, tuple[int, int]]:
        """Per source, the (users, memberships) the history intervals hold at night `d`."""
        users = dict(self.query(f"SELECT source_id, count(*) FROM history.users_as_of(DATE '{d}') GROUP BY ALL"))
        memberships = dict(
            self.query(
                "SELECT source_id, count(DISTINCT (group_id, user_id)) "
                f"FROM history.memberships_as_of(DATE '{d}') GROUP BY ALL"
            )
        )
        return {s: (users.get(s, 0), memberships.get(s, 0)) for s in users.keys() | memberships.keys()}

    def changes(self, as_of: dt.date) -> set[tuple]:
        """(entity_type, entity_id, change, changed_fields, reasons), lists as tuples."""
        return {
            tuple(tuple(v) if isinstance(v, list) else v for v in row)
            for row in self.query(
                "SELECT entity_type, entity_id, change, changed_fields, reasons FROM history.changes WHERE as_of = ?",
                [as_of],
            )
        }

    def history(self) -> dict[str, list[tuple]]:
        names = [*(t.name for t in tables.PUBLISHED), "changes", "held_removals", "night_counts"]
        return {t: sorted(self.query(f"SELECT * FROM history.{t}"), key=repr) for t in names}


def test_added_removed_updated_over_three_nights_and_why_someone_disappeared(tmp_path):
    reg, school, klass, students, teacher = one_class_school(4)
    wh = Warehouse(tmp_path, rules={"max_removal_share": 0.5, "max_removal_share_week": 0.5})
    wh.drop(reg, D1)
    wh.run(D1)
    night1 = wh.snapshot()
    assert {(e, c) for e, _, c, _, _ in wh.changes(D1)} == {
        ("school", "added"),
        ("user", "added"),
        ("group", "added"),
        ("membership", "added"),
        ("school_affiliation", "added"),
    }

    leaver, renamed, gone = students[0], students[1], students[2]
    leaver["enrolments"][0]["endDate"] = "2026-12-01"  # last day at school: excluded from 2026-12-02
    renamed["familyName"] = "Nyström"
    _drop_student(reg, klass, gone)
    wh.drop(reg, D2)
    wh.run(D2)
    night2 = wh.snapshot()
    newcomer = reg.student(school, given="Ny")
    klass["groupMemberships"].append({"person": {"id": newcomer["id"]}})
    wh.drop(reg, D3)
    wh.run(D3)

    changes = wh.changes(D2)
    assert ("user", renamed["id"], "updated", ("family_name",), None) in changes
    assert ("user", leaver["id"], "removed", None, ("PLACEMENT_ENDED",)) in changes
    assert ("user", gone["id"], "removed", None, None) in changes  # not in the drop at all
    assert ("membership", f"{klass['id']}/{leaver['id']}", "removed", None, ("MEMBER_EXCLUDED",)) in changes
    assert ("school_affiliation", f"{leaver['id']}/{school}", "removed", None, ("PLACEMENT_ENDED",)) in changes
    assert {c for c in changes if c[0] == "user"} == {
        ("user", renamed["id"], "updated", ("family_name",), None),
        ("user", leaver["id"], "removed", None, ("PLACEMENT_ENDED",)),
        ("user", gone["id"], "removed", None, None),
    }
    assert {(e, i, c) for e, i, c, _, _ in wh.changes(D3)} == {
        ("user", newcomer["id"], "added"),
        ("membership", f"{klass['id']}/{newcomer['id']}", "added"),
        ("school_affiliation", f"{newcomer['id']}/{school}", "added"),
    }

    # "When did this person disappear, and why?" in one query (the README's).
    assert wh.query(
        """SELECT as_of, change, reasons, detail FROM history.changes
           WHERE entity_type = 'user' AND entity_id = ? AND change = 'removed'""",
        [leaver["id"]],
    ) == [
        (
            D2,
            "removed",
            ["PLACEMENT_ENDED"],
            wh.query(
                "SELECT 'PLACEMENT_ENDED: ' || detail FROM nightly.exclusions WHERE as_of = ? AND record_id = ?",
                [D2, leaver["id"]],
            )[0][0],
        )
    ]

    # Every past night is rebuilt exactly as it was published, by the macros and by the nightly views.
    assert wh.as_of(D1) == night1 and wh.as_of(D2) == night2
    assert sorted(wh.query("SELECT * FROM nightly.users WHERE as_of = ?", [D1]), key=repr) == night1["roster.users"]
    # History is compact: an unchanged user is one interval, a removed one ends on the night it went.
    assert wh.query("SELECT count(*) FROM history.users WHERE user_id = ?", [students[3]["id"]]) == [(1,)]
    assert wh.query("SELECT valid_from, valid_to FROM history.users WHERE user_id = ?", [gone["id"]]) == [(D1, D2)]
    # First synced / last changed by sync, for the validation file.
    assert wh.query(
        "SELECT first_synced, last_changed FROM history.user_sync_dates WHERE user_id = ?", [renamed["id"]]
    ) == [(D1, D2)]
    assert wh.query(
        "SELECT first_synced, last_changed FROM history.group_sync_dates WHERE group_id = ?", [klass["id"]]
    ) == [(D1, D1)]


def test_rerunning_a_night_is_idempotent(tmp_path):
    reg, school, klass, students, _ = one_class_school(4)
    wh = Warehouse(tmp_path, rules={"max_removal_share": 0.5, "max_removal_share_week": 0.5})
    wh.drop(reg, D1)
    wh.run(D1)
    students[0]["familyName"] = "Ändrad"
    wh.drop(reg, D2)
    wh.run(D2)
    before = wh.history()
    wh.run(D2)
    wh.run(D1)
    assert wh.history() == before


def _week(tmp_path, name: str, order: list[int]):
    """Seven nights of a changing registry (a drop on some days only), published in the given order."""
    reg, school, klass, students, _ = one_class_school(10)
    wh = Warehouse(tmp_path / name, rules={"max_removal_share": 0.5, "max_removal_share_week": 0.5})
    start = dt.date(2026, 11, 30)
    wh.drop(reg, start)
    students[0]["familyName"] = "Day2"
    wh.drop(reg, start + dt.timedelta(days=2))
    _drop_student(reg, klass, students[1])
    extra = reg.student(school, given="Day4")
    klass["groupMemberships"].append({"person": {"id": extra["id"]}})
    wh.drop(reg, start + dt.timedelta(days=4))
    students[0]["familyName"] = "Elev"  # back to what it was on day 0
    reg.persons.append(students[1])  # and the leaver returns
    klass["groupMemberships"].append({"person": {"id": students[1]["id"]}})
    wh.drop(reg, start + dt.timedelta(days=5))
    for i in order:
        wh.run(start + dt.timedelta(days=i))
    return wh, students


def test_backfilling_a_week_in_any_order_builds_the_same_history(tmp_path):
    in_order, students = _week(tmp_path, "a", list(range(7)))
    shuffled = list(range(7))
    random.Random(5).shuffle(shuffled)
    assert shuffled != sorted(shuffled)
    out_of_order, _ = _week(tmp_path, "b", shuffled)

    def normalised(wh):  # run ids and publish times differ, nothing else may
        return wh.history()

    assert normalised(out_of_order) == normalised(in_order)
    # What the guard's week window reads of each night is what that night published, whatever the order.
    week = [dt.date(2026, 11, 30) + dt.timedelta(days=i) for i in range(7)]
    assert [out_of_order.recorded_counts(d) for d in week] == [out_of_order.history_counts(d) for d in week]
    # Ten students and their teacher, all in the class; on day 4 one student has left and another has joined.
    assert [in_order.recorded_counts(d) for d in (week[0], week[4])] == [{"testby": (11, 11)}] * 2
    assert in_order.query(
        "SELECT valid_from, valid_to FROM history.users WHERE user_id = ? ORDER BY 1", [students[1]["id"]]
    ) == [(dt.date(2026, 11, 30), dt.date(2026, 12, 4)), (dt.date(2026, 12, 5), None)]
    assert in_order.query(
        "SELECT as_of, change FROM history.changes WHERE entity_id = ? ORDER BY 1", [students[1]["id"]]
    ) == [(dt.date(2026, 11, 30), "added"), (dt.date(2026, 12, 4), "removed"), (dt.date(2026, 12, 5), "added")]


def test_each_night_of_a_week_has_the_same_change_set_from_its_gone_and_new_rows_as_from_comparing_every_key(
    tmp_path,
):
    # The usual night (after every published one) finds its changed keys from the rows gone and new against
    # the latest night; a backfill compares every key of both nights. Both must give the same change set.
    wh, _ = _week(tmp_path, "a", list(range(7)))
    week = [dt.date(2026, 11, 30) + dt.timedelta(days=i) for i in range(7)]
    kinds = set()
    with duckdb.connect(str(wh.path)) as con:
        for previous, night_ in itertools.pairwise(week):
            before, after = history.night_rows(previous), history.night_rows(night_)
            sets = history.gone_and_new(con, before, after)
            every_key = con.execute(history.changes_select(night_, before, after, previous)).fetchall()
            from_sets = con.execute(history.changes_select(night_, before, after, previous, sets)).fetchall()
            assert sorted(from_sets, key=repr) == sorted(every_key, key=repr)
            kinds |= {(row[3], row[5]) for row in every_key}  # (entity_type, change)
    # A name changed and changed back, a student left and returned, a new member joined.
    assert {("user", "updated"), ("user", "removed"), ("user", "added"), ("membership", "added")} <= kinds
    assert ("membership", "removed") in kinds


def test_backfilling_an_old_night_leaves_later_nights_as_they_were(tmp_path):
    reg, school, klass, students, _ = one_class_school(10)
    wh = Warehouse(tmp_path, rules={"max_removal_share": 0.5, "max_removal_share_week": 0.5})
    wh.drop(reg, D1)
    wh.run(D1)
    students[0]["familyName"] = "Later"
    wh.drop(reg, D3)
    wh.run(D3)
    latest, first = wh.snapshot(), wh.as_of(D1)
    wh.run(D2)  # the missing night in between: the drop of D1 applies
    assert wh.snapshot() == latest and wh.as_of(D1) == first
    backfilled = wh.as_of(D2)
    # the same roster as D1's; only the drop is a day older on D2 (diagnostics.source_drops.drop_age_days)
    assert backfilled.pop("diagnostics.source_drops") == [(D2, "testby", D1, 1, 3, "fresh")]
    assert backfilled == {
        v: [(D2, *r[1:]) for r in rows] for v, rows in first.items() if v != "diagnostics.source_drops"
    }
    # D3's change set is now against D2, and says the same
    assert ("user", students[0]["id"], "updated", ("family_name",), None) in wh.changes(D3)
    assert wh.query("SELECT DISTINCT compared_with FROM history.changes WHERE as_of = ?", [D3]) == [(D2,)]
    assert wh.changes(D2) == set()


def test_guard_holds_a_night_that_lost_30_percent_of_students_until_approved(tmp_path):
    reg, school, klass, students, _ = one_class_school(10)
    wh = Warehouse(tmp_path)
    wh.drop(reg, D1)
    wh.run(D1)
    published = wh.snapshot()
    for s in students[:3]:  # a half-written export: three of ten students missing
        _drop_student(reg, klass, s)
    wh.drop(reg, D2)
    with pytest.raises(night.NightHeld) as held:
        wh.run(D2)
    assert "3 of 11 users (27%) would be removed, more than max_removal_share 10%" in str(held.value)
    assert "memberships" in str(held.value)
    assert held.value.result.samples["testby/user"] == sorted(s["id"] for s in students[:3])
    # nothing of the night is published
    assert wh.snapshot() == published
    assert wh.query("SELECT as_of FROM nightly.nights") == [(D1,)]
    assert wh.query("SELECT count(*) FROM history.changes WHERE as_of = ?", [D2]) == [(0,)]
    assert wh.query(
        "SELECT entity_id FROM history.held_changes WHERE as_of = ? AND entity_type = 'user' ORDER BY 1", [D2]
    ) == [(s["id"],) for s in sorted(students[:3], key=lambda s: s["id"])]
    assert wh.query("SELECT approved_at IS NULL, published_at IS NULL FROM history.held_nights") == [(True, True)]

    with warehouse.connect(wh.path) as con:
        publish.approve(con, D2)
    wh.run(D2)
    assert {r[1] for r in wh.query("SELECT * FROM roster.users")} == {u[1] for u in published["roster.users"]} - {
        s["id"] for s in students[:3]
    }
    assert wh.query(
        "SELECT count(*) FROM history.changes WHERE as_of = ? AND change = 'removed' AND entity_type = 'user'", [D2]
    ) == [(3,)]
    assert wh.query("SELECT approved_at IS NOT NULL, published_at IS NOT NULL FROM history.held_nights") == [
        (True, True)
    ]


def test_an_empty_users_file_never_empties_the_roster(tmp_path):
    reg, school, klass, students, _ = one_class_school(30)
    wh = Warehouse(
        tmp_path, rules={"max_removal_share": 1.0, "max_removal_share_week": 1.0}
    )  # even with the share guard off
    wh.drop(reg, D1)
    wh.run(D1)
    published = wh.snapshot()
    reg.persons.clear()
    wh.drop(reg, D2)
    with pytest.raises(night.NightHeld, match="source 'testby': no users left"):
        wh.run(D2)
    assert wh.snapshot() == published


def test_removal_hold_period_publishes_additions_and_keeps_removals_until_it_ends(tmp_path):
    reg, school, klass, students, _ = one_class_school(4)
    summer = {"from": "2026-12-02", "to": "2026-12-03"}
    wh = Warehouse(tmp_path, rules={"hold_removals": [summer]})
    wh.drop(reg, D1)
    wh.run(D1)
    for s in students:  # last year's class ends; a new student arrives
        _drop_student(reg, klass, s)
    newcomer = reg.student(school, given="Ny")
    klass["groupMemberships"].append({"person": {"id": newcomer["id"]}})
    wh.drop(reg, D2)
    wh.run(D2)  # four of five students "removed", but removals are held: not held by the guard either
    wh.run(D3)
    users = {r[1] for r in wh.query("SELECT * FROM roster.users")}
    assert {s["id"] for s in students} | {newcomer["id"]} <= users
    assert ("user", students[0]["id"], "removal_held", None, None) in wh.changes(D2)
    assert wh.query("SELECT DISTINCT removal_held_until FROM history.held_removals") == [(D3,)]
    assert wh.query("SELECT DISTINCT removal_held_until FROM history.changes WHERE change = 'removal_held'") == [(D3,)]

    d4 = dt.date(2026, 12, 4)
    with pytest.raises(night.NightHeld):  # the removals now arrive at once, and the guard sees them
        wh.run(d4)
    with warehouse.connect(wh.path) as con:
        publish.approve(con, d4)
    wh.run(d4)
    assert {r[1] for r in wh.query("SELECT * FROM roster.users")} & {s["id"] for s in students} == set()
    assert wh.query(
        "SELECT count(*) FROM history.changes WHERE as_of = ? AND entity_type = 'user' AND change = 'removed'", [d4]
    ) == [(4,)]


def test_a_publish_killed_midway_leaves_the_previous_night_and_history_intact(tmp_path):
    reg, school, klass, students, _ = one_class_school(10)
    wh = Warehouse(tmp_path)
    wh.drop(reg, D1)
    wh.run(D1)
    before, history_before = wh.snapshot(), wh.history()
    students[0]["familyName"] = "Ändrad"
    wh.drop(reg, D2)
    installation = load_installation(wh.data_dir)
    for source in installation.sources:
        night.validate(source.id, night.extract(source, D2, wh.staging).staging_file)
    evaluated = night.evaluate(installation, D2, wh.staging)

    class Killed(RuntimeError):
        pass

    statements = []

    class Proxy:
        """A connection that dies at the n-th statement of the publish transaction."""

        def __init__(self, con, die_at):
            self._con, self._die_at = con, die_at

        def execute(self, sql, *args, **kwargs):
            statements.append(sql)
            if "BEGIN" not in sql and "ROLLBACK" not in sql and len(statements) == self._die_at:
                raise Killed(sql[:40])
            return self._con.execute(sql, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._con, name)

    policies = Policies.for_night(installation, D2)
    backup = tmp_path / "backup.duckdb"
    shutil.copy(wh.path, backup)
    with warehouse.connect(wh.path) as con:  # which statements a publish runs
        publish.publish_night(Proxy(con, die_at=-1), evaluated.rules_db, D2, "count", ["testby"], policies)
    last_commit = max(i for i, sql in enumerate(statements, start=1) if sql == "COMMIT")
    points = range(5, last_commit, max(1, (last_commit - 5) // 10))  # about ten, spread over the whole publish
    assert len(points) >= 10
    for die_at in points:  # killed at many points, inside and outside the transactions
        shutil.copy(backup, wh.path)
        statements.clear()
        with warehouse.connect(wh.path) as con:
            with pytest.raises(Killed):
                publish.publish_night(Proxy(con, die_at), evaluated.rules_db, D2, "r", ["testby"], policies)
            # the caller's connection is as it was: it writes rows in order again (the night's writes do not)
            assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (True,)
        assert wh.snapshot() == before
        assert wh.history() == history_before
        assert wh.query("SELECT count(*) FROM nightly.users WHERE as_of = ?", [D2]) == [(0,)], die_at


def test_validation_file_shows_first_synced_and_last_changed_by_sync_as_of_its_night(tmp_path):
    reg, school, klass, students, _ = one_class_school(10)
    wh = Warehouse(tmp_path)
    wh.drop(reg, D1)
    wh.run(D1)
    students[0]["familyName"] = "Ändrad"
    klass["displayName"] = "7B"
    wh.drop(reg, D2)
    wh.run(D2)

    def sheet(as_of: dt.date, name: str) -> dict[str, dict]:
        _, (file,) = write_validation_files(wh.path, tmp_path / "exports", as_of)
        with open(file.csv[name], encoding="utf-8") as f:
            return {r.get("user_id") or r["group_id"]: r for r in csv.DictReader(f)}

    users, groups = sheet(D2, "Users"), sheet(D2, "Groups")
    assert (users[students[0]["id"]]["first_synced"], users[students[0]["id"]]["last_changed_by_sync"]) == (
        D1.isoformat(),
        D2.isoformat(),
    )
    assert (users[students[1]["id"]]["first_synced"], users[students[1]["id"]]["last_changed_by_sync"]) == (
        D1.isoformat(),
        D1.isoformat(),
    )
    assert groups[klass["id"]]["last_changed_by_sync"] == D2.isoformat()
    # the file of the earlier night, written again today, says what it said then
    assert sheet(D1, "Users")[students[0]["id"]]["last_changed_by_sync"] == D1.isoformat()


def test_a_warehouse_from_before_history_is_migrated_to_the_same_history(tmp_path):
    reg, school, klass, students, _ = one_class_school(10)
    wh = Warehouse(tmp_path, rules={"max_removal_share": 0.5, "max_removal_share_week": 0.5})
    nights = [D1, D2, D3]
    for i, d in enumerate(nights):
        students[0]["familyName"] = f"Namn{i % 2}"  # changes, then changes back
        wh.drop(reg, d)
        wh.run(d)
    expected_history = wh.history()
    per_night = {t: sorted(wh.query(f"SELECT * FROM nightly.{t}"), key=repr) for t in tables.BY_NAME}

    # The layout of the earlier version: nightly.<table> tables keyed by as_of, views of the latest night.
    with duckdb.connect(str(wh.path)) as con:
        for table in tables.BY_NAME:
            con.execute(f"CREATE TABLE nightly.old_{table} AS SELECT * FROM nightly.{table}")
            con.execute(f"DROP VIEW nightly.{table}")
            con.execute(f"ALTER TABLE nightly.old_{table} RENAME TO {table}")
            con.execute(
                f"CREATE OR REPLACE VIEW {tables.BY_NAME[table].view} AS SELECT * FROM nightly.{table} "
                "WHERE as_of = (SELECT max(as_of) FROM nightly.nights)"
            )
        con.execute("DROP SCHEMA history CASCADE")
    latest = wh.snapshot()

    with warehouse.connect(wh.path) as con:
        warehouse.ensure_schema(con)
    # The earlier version recorded no counts per night: the guard counts those nights in the history.
    migrated = wh.history()
    assert migrated.pop("night_counts") == []
    assert migrated == {t: rows for t, rows in expected_history.items() if t != "night_counts"}
    assert wh.snapshot() == latest
    assert {t: sorted(wh.query(f"SELECT * FROM nightly.{t}"), key=repr) for t in tables.BY_NAME} == per_night
    assert wh.query(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = 'nightly' AND table_name = 'users'"
    ) == [("VIEW",)]
    d4 = dt.date(2026, 12, 4)
    wh.run(d4)  # and the nights go on
    assert wh.query("SELECT count(*) FROM nightly.users WHERE as_of = ?", [d4]) == [(11,)]
    assert wh.recorded_counts(d4) == wh.history_counts(d4) == {"testby": (11, 11)}


def test_a_member_listed_twice_is_one_interval_in_the_history_on_the_first_night_and_after(tmp_path):
    # The first night opens one interval per published row; the rows are a set, however often the registry
    # lists a member.
    reg, school, klass, students, _ = one_class_school(3)
    klass["groupMemberships"].append(dict(klass["groupMemberships"][0]))
    wh = Warehouse(tmp_path)
    wh.drop(reg, D1)
    wh.run(D1)
    wh.run(D2)
    rows = wh.query("SELECT group_id, user_id, valid_from, valid_to FROM history.memberships ORDER BY ALL")
    assert len(rows) == len({(g, u) for g, u, _, _ in rows}) == 4  # three students and the teacher
    assert {(f, t) for _, _, f, t in rows} == {(D1, None)}


def test_the_first_nights_change_set_adds_every_published_entity_once(tmp_path):
    # No night before it: every school, user, group, membership and affiliation of the roster is added, once
    # however often the registry lists it (a member listed twice, and with two more placements in the group) and
    # however many rows it has (a student who also works at the school: two affiliations, one entity).
    reg, school, klass, students, teacher = one_class_school(3)
    klass["groupMemberships"].append(dict(klass["groupMemberships"][0]))
    klass["groupMemberships"].append(
        {"person": {"id": students[1]["id"]}, "startDate": "2026-08-17", "endDate": "2027-06-10"}
    )
    klass["groupMemberships"].append({"person": {"id": students[1]["id"]}, "startDate": "2026-11-01"})
    reg.duty(students[2], school, role="Övrig pedagogisk personal")
    wh = Warehouse(tmp_path)
    wh.drop(reg, D1)
    wh.run(D1)
    rows = wh.query(
        """SELECT entity_type, entity_id, change, compared_with, changed_fields, reasons, detail, removal_held_until
           FROM history.changes WHERE as_of = ?""",
        [D1],
    )
    published = {
        "school": wh.query("SELECT school_id FROM roster.schools"),
        "user": wh.query("SELECT user_id FROM roster.users"),
        "group": wh.query("SELECT group_id FROM roster.groups"),
        "membership": wh.query("SELECT group_id || '/' || user_id FROM roster.memberships"),
        "school_affiliation": wh.query("SELECT user_id || '/' || school_id FROM roster.school_affiliations"),
    }
    expected = sorted(
        (entity, key, "added", None, None, None, None, None)
        for entity, keys in published.items()
        for (key,) in set(keys)
    )
    assert sorted(rows) == expected
    assert wh.query("SELECT count(*) FROM roster.school_affiliations WHERE user_id = ?", [students[2]["id"]]) == [(2,)]
    assert len(expected) == 1 + 4 + 1 + 4 + 4  # three students and the teacher, each in the class and the school
