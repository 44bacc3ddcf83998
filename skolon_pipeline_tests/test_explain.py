"""`skolon-pipeline explain`: by id, e-mail and accent-free name fragment, protected identities, no match, and
its speed on a 200 000-person warehouse."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import duckdb
import pytest

from skolon_pipeline import cli
from skolon_pipeline.demo import DEFECTS, DEMO_NIGHT, PROTECTED_PERSON_IDS
from skolon_pipeline.explain import find, render
from skolon_pipeline.exports.explanations import MASK, NOT_FOUND
from skolon_pipeline_tests import synthetic


def defect(code: str) -> str:
    return next(d.record_ids[0] for d in DEFECTS if d.code == code)


def q(warehouse: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_by_id_an_excluded_person_with_reason_and_visible_from(demo_warehouse):
    admin = defect("EMPLOYMENT_NOT_STARTED")
    answer = find(demo_warehouse, admin.upper())
    assert answer.as_of == DEMO_NIGHT
    (person,) = answer.found
    assert (person.kind, person.id, person.in_roster, person.role) == ("person", admin, False, "staff")
    assert person.schools == ["Lindby gymnasium"]
    assert [r.code for r in person.reasons] == ["EMPLOYMENT_NOT_STARTED"]
    assert person.visible_from == dt.date(2026, 2, 1)
    text = "\n".join(render(answer))
    assert "In the roster: NO (would be staff)" in text
    assert "Anställningen har inte börjat ännu — visas från 2026-02-01 / Employment has not started yet" in text
    assert "Visible from: 2026-02-01" in text


def test_a_person_who_needs_a_fix_has_no_visible_from(demo_warehouse):
    (person,) = find(demo_warehouse, defect("MISSING_EMAIL")).found
    assert person.visible_from is None and person.email is None
    assert "something must be fixed in the registry first" in "\n".join(render(find(demo_warehouse, person.id)))


def test_by_email_an_included_student_with_schools_and_groups(demo_warehouse):
    user_id, email, given, family = q(
        demo_warehouse,
        """
        SELECT user_id, email, given_name, family_name FROM roster.users
        WHERE role = 'student' AND NOT protected_identity ORDER BY user_id LIMIT 1""",
    )[0]
    answer = find(demo_warehouse, f"  {email.upper()} ")
    (person,) = answer.found
    assert (person.id, person.in_roster, person.name, person.email) == (user_id, True, f"{given} {family}", email)
    classes = q(
        demo_warehouse,
        """SELECT g.name FROM roster.memberships m JOIN roster.groups g USING (group_id)
                                   WHERE m.user_id = ? AND g.group_type = 'Klass'""",
        [user_id],
    )
    assert any(g.startswith(f"{classes[0][0]} (Klass, student") for g in person.groups)
    assert len(person.schools) == 1 and not person.reasons
    assert "In the roster: yes, as student" in "\n".join(render(answer))


def test_by_name_fragment_without_accents(demo_warehouse):
    rows = q(
        demo_warehouse,
        """SELECT user_id, given_name, family_name FROM roster.users
                                WHERE NOT protected_identity AND family_name LIKE '%ö%' ORDER BY user_id LIMIT 1""",
    )
    user_id, given, family = rows[0]
    plain = family.lower().replace("ö", "o").replace("å", "a").replace("ä", "a")
    assert plain != family.lower()
    answer = find(demo_warehouse, f"{plain[1:-1]} {given.upper()}")  # words in any order, any case
    assert user_id in [f.id for f in answer.found]
    assert all(
        plain[1:-1] in f.name.lower().replace("ö", "o").replace("å", "a").replace("ä", "a") for f in answer.found
    )


def test_warnings_are_shown_as_notes(demo_warehouse):
    group_id = q(
        demo_warehouse, "SELECT record_id FROM diagnostics.warnings WHERE code = 'ENUM_CASE' AND entity_type = 'group'"
    )[0][0]
    answer = find(demo_warehouse, group_id)
    (group,) = answer.found
    assert (
        group.in_roster
        and group.warnings
        and group.warnings[0].startswith("ENUM_CASE: Ett kodvärde hade fel skiftläge")
    )
    assert "  Notes (the record is synced as far as these go):" in render(answer)


def test_groups_and_memberships_too(demo_warehouse):
    (group,) = find(demo_warehouse, "simskola").found
    assert group.kind == "group" and not group.in_roster
    assert [r.code for r in group.reasons] == ["GROUP_UNKNOWN_SCHOOL"]
    assert "GROUP_EXCLUDED 5" in group.held_back_summary
    membership = defect("UNKNOWN_PERSON")
    (found,) = find(demo_warehouse, membership).found
    assert found.kind == "membership" and [r.code for r in found.reasons] == ["UNKNOWN_PERSON"]
    # a person id that only a membership names (not in the drop)
    answer = find(demo_warehouse, membership.split("/")[1])
    (person,) = answer.found
    assert (person.kind, person.in_roster) == ("person", False)
    group_name = q(demo_warehouse, "SELECT name FROM roster.groups WHERE group_id = ?", [membership.split("/")[0]])[0][
        0
    ]
    assert [(r.about, r.code) for r in person.held_back_memberships] == [(group_name, "UNKNOWN_PERSON")]
    assert f"Only group memberships name this id: {NOT_FOUND}" in "\n".join(render(answer))


def test_protected_identity_is_found_by_id_only_and_masked(demo_warehouse):
    pid = PROTECTED_PERSON_IDS[0]
    email, given, family = q(
        demo_warehouse, "SELECT email, given_name, family_name FROM roster.users WHERE user_id = ?", [pid]
    )[0]
    answer = find(demo_warehouse, pid)
    (person,) = answer.found
    assert (person.name, person.email, person.role, person.protected) == (MASK, MASK, "student", True)
    assert person.schools and not person.groups
    text = "\n".join(render(answer))
    assert email not in text and f"{given} {family}" not in text and family not in text
    assert "Protected identity" in text
    # by their address or name: nothing, and nothing says that a protected person exists (issue 18 item 12)
    for query in (email, f"{given} {family}"):
        answer = find(demo_warehouse, query)
        assert pid not in [f.id for f in answer.found]
        text = "\n".join(render(answer)).lower()
        assert pid not in text and "protected" not in text and "skyddad" not in text


def test_no_match_says_where_to_look(demo_warehouse, capsys):
    answer = find(demo_warehouse, "Zzyzx Nobody")
    assert answer.found == []
    assert NOT_FOUND in render(answer)[0]
    assert cli.main(["explain", "zzyzx", "--warehouse", str(demo_warehouse)]) == 1
    assert (
        "not in any registry drop — check that the record is complete and marked for export" in capsys.readouterr().out
    )
    assert (
        cli.main(
            [
                "explain",
                defect("PLACEMENT_ENDED"),
                "--warehouse",
                str(demo_warehouse),
                "--as-of",
                DEMO_NIGHT.isoformat(),
            ]
        )
        == 0
    )
    assert "PLACEMENT_ENDED" in capsys.readouterr().out
    assert cli.main(["explain", "x", "--warehouse", str(demo_warehouse), "--as-of", "2025-01-01"]) == 1
    assert "night 2025-01-01 is not published" in capsys.readouterr().err


@pytest.mark.slow
def test_answers_fast_on_a_200000_person_warehouse(tmp_path, record_property):
    started = time.perf_counter()
    wh = synthetic.build(tmp_path / "big.duckdb", persons=200_000)
    build_s = time.perf_counter() - started
    assert (
        q(wh, "SELECT count(*) FROM nightly.users")[0][0] + q(wh, "SELECT count(*) FROM nightly.excluded_persons")[0][0]
        == 200_000
    )
    email = q(wh, "SELECT email FROM roster.users WHERE user_id = ?", [synthetic.UNIQUE_ID])[0][0]
    timings = {}

    def timed(query: str):
        t = time.perf_counter()
        answer = find(wh, query)
        timings[query] = time.perf_counter() - t
        return answer

    assert [f.id for f in timed(synthetic.UNIQUE_ID).found] == [synthetic.UNIQUE_ID]
    assert [f.id for f in timed(email).found] == [synthetic.UNIQUE_ID]
    assert [f.id for f in timed("zatterstrom").found] == [synthetic.UNIQUE_ID]
    many = timed("bjork")
    assert (
        len(many.found) == 10
        and many.more
        == q(
            wh,
            """
        SELECT count(*) FROM (SELECT family_name, protected_identity FROM roster.users UNION ALL
                              SELECT family_name, protected_identity FROM diagnostics.excluded_persons)
        WHERE family_name = 'Björk' AND NOT protected_identity""",
        )[0][0]
        - 10
    )
    (excluded,) = timed(synthetic.EXCLUDED_ID).found
    assert not excluded.in_roster and excluded.visible_from == dt.date(2026, 10, 1)
    assert excluded.held_back_memberships[0].code == "MEMBER_EXCLUDED"
    assert timed("nobody at all").found == []
    record_property("explain_seconds", {k: round(v, 3) for k, v in timings.items()})
    record_property("build_seconds", round(build_s, 2))
    print(
        f"synthetic warehouse built in {build_s:.2f} s; explain: "
        + ", ".join(f"{k!r} {v * 1000:.0f} ms" for k, v in timings.items())
    )
    assert max(timings.values()) < 5, timings  # generous: about 0.1-0.4 s each on a shared 2-core machine


def test_a_warehouse_being_written_gives_a_clear_message(tmp_path, capsys):
    import subprocess
    import sys

    wh = synthetic.build(tmp_path / "small.duckdb", persons=2000)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); time.sleep(60)",
            str(wh),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "open"
        assert cli.main(["explain", synthetic.UNIQUE_ID, "--warehouse", str(wh)]) == 1
        # The pipeline never opens the published file for writing, so whoever holds it is another program.
        assert "is locked by another program; try again when it has finished" in capsys.readouterr().err
        assert cli.main(["export", "--warehouse", str(wh), "--export-dir", str(tmp_path / "out")]) == 1
        assert "is locked by another program" in capsys.readouterr().err
    finally:
        writer.kill()
        writer.wait()
    assert cli.main(["explain", "person-1", "--warehouse", str(wh)]) == 0


# ─── everyone the registry ever sent (issue 14) ─────────────────────────────────────────────────────────


def test_by_the_raw_invalid_address_and_by_the_address_as_typed(demo_warehouse):
    invalid = defect("INVALID_EMAIL")
    raw = find(demo_warehouse, "Anna.Berg@@elev.lindby.se")  # as the registry sent it
    assert [(f.id, f.matched_by) for f in raw.found] == [(invalid, None)]
    typed = find(demo_warehouse, "anna.berg@elev.lindby.se")  # as the admin thinks it is
    (person,) = typed.found
    assert person.id == invalid and not person.in_roster and [r.code for r in person.reasons] == ["INVALID_EMAIL"]
    text = "\n".join(render(typed))
    assert "anna.berg@@elev.lindby.se" in text and "close to the address the registry sent" in text
    assert "rätta e-postadressen i elevregistret" in text and NOT_FOUND not in text
    # an address nobody has, but whose name part is a person's name
    by_name = {f.id: f for f in find(demo_warehouse, "anna.berg@lindby.se").found}
    assert "the name in the address (anna berg)" in by_name[invalid].matched_by


@pytest.mark.slow
def test_a_person_removed_three_nights_ago_by_name_with_date_and_reason(run_registry):
    from skolon_pipeline_tests.registry import Registry

    reg = Registry()
    school = reg.school()
    stays = [reg.student(school) for _ in range(3)]
    leaver = reg.student(school, given="Lova", family="Ängström", end="2026-12-02")
    deleted = reg.student(school, given="Ture", family="Sjöberg")
    reg.group(school, members=[*stays, leaver, deleted])
    rules = {"max_removal_share": 1.0, "max_removal_share_week": 1.0}
    for day in ("2026-12-01", "2026-12-02"):
        run_registry(reg, as_of=day, rules=rules)
    reg.persons.remove(deleted)  # the registry stops sending him
    for day in ("2026-12-03", "2026-12-04", "2026-12-05"):
        last = run_registry(reg, as_of=day, rules=rules)

    (person,) = find(last.warehouse, "lova angstrom").found
    assert (person.id, person.in_roster, person.in_drop) == (leaver["id"], False, True)
    assert (person.past.last_in_roster, person.past.removed_on) == (dt.date(2026, 12, 2), dt.date(2026, 12, 3))
    assert [r.code for r in person.past.removal_reasons] == ["PLACEMENT_ENDED"]
    text = "\n".join(render(find(last.warehouse, "lova angstrom")))
    assert (
        "In the roster until 2026-12-02; removed on 2026-12-03: The school placement has ended "
        "(the last enrolment ended on 2026-12-02)"
    ) in text

    answer = find(last.warehouse, "Sjöberg")
    (gone,) = answer.found
    assert (gone.id, gone.in_roster, gone.in_drop, gone.name) == (deleted["id"], False, False, "Ture Sjöberg")
    assert (gone.past.last_in_roster, gone.past.removed_on, gone.past.gone_since) == (
        dt.date(2026, 12, 2),
        dt.date(2026, 12, 3),
        dt.date(2026, 12, 3),
    )
    text = "\n".join(render(answer))
    assert "In the roster until 2026-12-02; removed on 2026-12-03: no longer in the registry's export" in text
    assert "No longer in the registry's export since 2026-12-03" in text and NOT_FOUND not in text
    assert [f.id for f in find(last.warehouse, deleted["id"]).found] == [deleted["id"]]  # by id too
    assert [f.id for f in find(last.warehouse, deleted["emails"][0]["value"]).found] == [deleted["id"]]
    # as of the night before he left, he is simply in the roster
    (before,) = find(last.warehouse, deleted["id"], as_of=dt.date(2026, 12, 2)).found
    assert before.in_roster and before.past.first_synced == dt.date(2026, 12, 1)


def test_an_id_no_night_knows(demo_warehouse, capsys, monkeypatch):
    answer = find(demo_warehouse, "00000000-0000-0000-0000-000000000000")
    assert answer.found == []
    assert "or any night before it: not in any registry drop" in render(answer)[0]


def test_the_analyst_examples_in_the_docs_return_rows(demo_warehouse):
    """The README's SQL examples for analysts run on the demo warehouse, and those that should find something do
    (the reasons per school keep the records without a school; the earlier-night example finds a night)."""
    repo = Path(__file__).resolve().parents[1]
    text = "\n".join(
        p.read_text(encoding="utf-8") for p in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))] if p.exists()
    )
    block = re.search(r"```sql\n(-- Why is this person missing, and when will they appear\?.*?)```", text, re.S).group(
        1
    )
    statements = [s.strip() for s in block.split(";") if "SELECT" in s]
    results = {}
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        for statement in statements:
            sql = statement.replace("'…'", "'x'").replace("DATE '2025-12-14'", f"DATE '{DEMO_NIGHT}'")
            results[statement.splitlines()[0]] = con.execute(sql).fetchall()
    per_school = next(rows for first, rows in results.items() if first.startswith("-- Reasons per school"))
    assert "no school" in {r[0] for r in per_school}
    assert (
        sum(r[2] for r in per_school)
        >= q(demo_warehouse, "SELECT count(DISTINCT record_id) FROM diagnostics.exclusions")[0][0]
    )
    earlier = next(rows for first, rows in results.items() if first.startswith("-- The roster as it was"))
    assert len(earlier) > 500
