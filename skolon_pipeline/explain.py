"""`skolon-pipeline explain QUERY`: is this person or group in the roster, and if not, why not and from when?

QUERY is an id (person, group, or a membership's `<group_id>/<person_id>`), an e-mail address, or part of a
name; names match case- and accent-insensitively ("bjork" finds "Björk"), every word of the query in the
name. Reads one published night (the latest by default) through a read-only connection: the roster, the
exclusions with their plain-language explanations (exports/explanations.py), and visible_from.

A person with a protected identity is found by id only; shown with name and e-mail masked, id, role and school.
A name or e-mail that matches only such people is reported as a count, never with ids.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from skolon_pipeline.publish import warehouse
from skolon_pipeline.exports.explanations import MASK, NOT_FOUND, PROTECTED_DETAIL, explain, explain_warning

MAX_MATCHES = 10


@dataclass
class Reason:
    code: str
    explanation: str
    detail: str | None
    visible_from: dt.date | None
    about: str | None = None  # for a held-back membership: the group (or person) it concerns


@dataclass
class Found:
    kind: str  # person | group | membership
    id: str
    source_id: str
    in_roster: bool
    name: str | None = None
    email: str | None = None
    role: str | None = None
    protected: bool = False
    schools: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # roster memberships, as text
    reasons: list[Reason] = field(default_factory=list)  # the record's own reasons
    held_back_memberships: list[Reason] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)  # a group's type, dates and member counts
    held_back_summary: str | None = None  # a group's held-back memberships, counted per reason
    warnings: list[str] = field(default_factory=list)  # values repaired or dropped; the record stays

    @property
    def visible_from(self) -> dt.date | None:
        dates = {r.visible_from for r in self.reasons}
        return dates.pop() if len(dates) == 1 else None


@dataclass
class Answer:
    query: str
    as_of: dt.date
    found: list[Found]
    more: int = 0  # matches not shown
    protected_matches: int = 0  # name/e-mail matches of protected persons, not shown


def _tokens(query: str) -> list[str]:
    return [t for t in query.lower().split() if t]


def find(warehouse_path: Path, query: str, as_of: dt.date | None = None) -> Answer:
    from skolon_pipeline.exports.validation_file import resolve_night

    with warehouse.connect(Path(warehouse_path), read_only=True) as con:
        night = resolve_night(con, as_of)
        warehouse.use_night(con, night)
        return _find(con, query.strip(), night)


def _find(con: duckdb.DuckDBPyConnection, query: str, night: dt.date) -> Answer:
    q = query.lower()
    tokens = _tokens(query)
    name_match = " AND ".join(["contains(strip_accents(lower(concat_ws(' ', given_name, family_name))), strip_accents(?))"]
                              * len(tokens)) or "false"
    people = con.execute(
        f"""WITH people AS (
                SELECT source_id, user_id AS person_id, given_name, family_name, email, role, protected_identity,
                       true AS included FROM users
                UNION ALL
                SELECT source_id, person_id, given_name, family_name, email, role, protected_identity, false
                FROM excluded_persons)
            SELECT source_id, person_id, given_name, family_name, email, role, protected_identity, included,
                   person_id = ? AS by_id
            FROM people
            WHERE person_id = ? OR email = ? OR ({name_match})
            ORDER BY NOT by_id, family_name, given_name, person_id""",
        [q, q, q, *tokens],
    ).fetchall()
    protected_hidden = sum(1 for r in people if r[6] and not r[8])
    people = [r for r in people if r[8] or not r[6]]
    group_match = " AND ".join(["contains(strip_accents(lower(name)), strip_accents(?))"] * len(tokens)) or "false"
    groups = con.execute(
        f"""WITH all_groups AS (
                SELECT source_id, group_id, school_id, name, group_type, start_date, end_date, true AS included FROM groups
                UNION ALL
                SELECT source_id, group_id, school_id, name, group_type, start_date, end_date, false FROM excluded_groups)
            SELECT * FROM all_groups WHERE group_id = ? OR ({group_match})
            ORDER BY group_id <> ?, name, group_id""",
        [q, *tokens, q],
    ).fetchall()

    found: list[Found] = []
    known = {r[1] for r in people} | {g[1] for g in groups}
    total = len(people) + len(groups)
    for row in people[:MAX_MATCHES]:
        found.append(_person(con, *row[:8]))
    for row in groups[: max(0, MAX_MATCHES - len(found))]:
        found.append(_group(con, row))
    # ids only the exclusions know: a membership, or a person/group a membership names that is not in the drop
    if q not in known:
        for source_id, record_id, entity_type, person_id, group_id in con.execute(
            """SELECT DISTINCT source_id, record_id, entity_type, person_id, group_id FROM exclusions
               WHERE record_id = ? OR person_id = ? OR group_id = ? ORDER BY ALL""",
            [q, q, q],
        ).fetchall():
            if entity_type == "membership" and record_id != q:
                if (source_id, q) not in {(f.source_id, f.id) for f in found}:
                    found.append(_referenced_only(con, source_id, q, "person" if person_id == q else "group"))
                    total += 1
                continue
            if entity_type == "membership" and _protected_member(con, source_id, record_id):
                continue
            found.append(_membership(con, source_id, record_id) if entity_type == "membership"
                         else Found(entity_type, record_id, source_id, False, reasons=_reasons(con, source_id, record_id)))
            total += 1
    return Answer(query, night, found, more=max(0, total - len(found)), protected_matches=protected_hidden)


def _reasons(con, source_id: str, record_id: str, protected: bool = False) -> list[Reason]:
    return [
        Reason(code, explain(code, visible), None if protected else detail, visible)
        for code, detail, visible in con.execute(
            f"""SELECT reason_code, {_SAFE_DETAIL}, visible_from FROM exclusions x
                WHERE source_id = ? AND record_id = ? ORDER BY reason_code, detail""",
            [source_id, record_id],
        ).fetchall()
    ]


# A detail naming someone else with a protected identity (a shared e-mail address) would link them.
_SAFE_DETAIL = f"""CASE WHEN EXISTS (
        SELECT 1 FROM (SELECT source_id, user_id AS person_id FROM users WHERE protected_identity
                       UNION ALL SELECT source_id, person_id FROM excluded_persons WHERE protected_identity) pp
        WHERE pp.source_id = x.source_id AND pp.person_id IS DISTINCT FROM x.person_id AND contains(x.detail, pp.person_id))
    THEN '{PROTECTED_DETAIL}' ELSE x.detail END"""


def _warnings(con, source_id: str, entity_type: str, record_id: str, protected: bool = False) -> list[str]:
    return [
        f"{code}: {explain_warning(code)}" + ("" if protected or not detail else f" ({detail})")
        for code, detail in con.execute(
            """SELECT code, detail FROM warnings
               WHERE source_id = ? AND entity_type = ? AND record_id = ? ORDER BY ALL""",
            [source_id, entity_type, record_id],
        ).fetchall()
    ]


def _school_names(con, source_id: str, school_ids: list[str]) -> dict[str, str]:
    rows = con.execute(
        "SELECT school_id, name FROM schools WHERE source_id = ? AND list_contains(?, school_id)", [source_id, school_ids]
    ).fetchall()
    return dict(rows)


def _protected_member(con, source_id: str, record_id: str) -> bool:
    person = record_id.split("/", 1)[-1]
    rows = con.execute(
        """SELECT protected_identity FROM users WHERE source_id = $s AND user_id = $p
           UNION ALL SELECT protected_identity FROM excluded_persons WHERE source_id = $s AND person_id = $p""",
        {"s": source_id, "p": person},
    ).fetchall()
    return any(r[0] for r in rows)


def _person(con, source_id, person_id, given, family, email, role, protected, included) -> Found:
    f = Found("person", person_id, source_id, included, role=role, protected=protected)
    f.name = MASK if protected else " ".join(p for p in (given, family) if p) or None
    f.email = MASK if protected else email
    if included:
        rows = con.execute(
            """SELECT coalesce(s.name, a.school_id), a.role, a.start_date, a.end_date FROM school_affiliations a
               LEFT JOIN schools s USING (source_id, school_id)
               WHERE a.source_id = ? AND a.user_id = ? ORDER BY 1""",
            [source_id, person_id],
        ).fetchall()
        f.schools = [f"{name} ({r}, {_span(s, e)})" for name, r, s, e in rows]
        if not protected:
            f.groups = [
                f"{name} ({gtype}, {r}" + (f", {_span(s, e)})" if s or e else ")")
                for name, gtype, r, s, e in con.execute(
                    """SELECT g.name, g.group_type, m.role, m.start_date, m.end_date FROM memberships m
                       JOIN groups g USING (source_id, group_id)
                       WHERE m.source_id = ? AND m.user_id = ? ORDER BY g.group_type, g.name""",
                    [source_id, person_id],
                ).fetchall()
            ]
    else:
        school = con.execute("SELECT school_id FROM excluded_persons WHERE source_id = ? AND person_id = ?",
                             [source_id, person_id]).fetchall()
        ids = [s for (s,) in school if s]
        names = _school_names(con, source_id, ids)
        f.schools = [names.get(s, f"{s} (not a school unit in the drop)") for s in ids]
    f.reasons = _reasons(con, source_id, person_id, protected)
    f.warnings = _warnings(con, source_id, "person", person_id, protected)
    held = con.execute(
        f"""SELECT x.record_id, x.reason_code, {_SAFE_DETAIL}, x.visible_from, coalesce(g.name, eg.name, x.group_id)
           FROM exclusions x
           LEFT JOIN groups g ON g.source_id = x.source_id AND g.group_id = x.group_id
           LEFT JOIN excluded_groups eg ON eg.source_id = x.source_id AND eg.group_id = x.group_id
           WHERE x.source_id = ? AND x.entity_type = 'membership' AND x.person_id = ?
           ORDER BY 5, 1, 2""",
        [source_id, person_id],
    ).fetchall()
    f.held_back_memberships = [
        Reason(code, explain(code, visible), None if protected else detail, visible, None if protected else group)
        for _, code, detail, visible, group in held
    ]
    return f


def _group(con, row) -> Found:
    source_id, group_id, school_id, name, group_type, start, end, included = row
    f = Found("group", group_id, source_id, included, name=name, role=group_type)
    school = _school_names(con, source_id, [school_id] if school_id else []).get(school_id)
    f.schools = [school or f"{school_id} (not a school unit in the drop)"]
    f.facts.append(f"type {group_type}, {_span(start, end)}")
    if included:
        students, teachers = con.execute(
            """SELECT count(*) FILTER (WHERE role = 'student'), count(*) FILTER (WHERE role = 'teacher')
               FROM memberships WHERE source_id = ? AND group_id = ?""",
            [source_id, group_id],
        ).fetchone()
        f.facts.append(f"{students} students and {teachers} teachers in the roster")
    f.reasons = _reasons(con, source_id, group_id)
    f.warnings = _warnings(con, source_id, "group", group_id)
    held = con.execute(
        """SELECT reason_code, count(DISTINCT record_id) FROM exclusions
           WHERE source_id = ? AND entity_type = 'membership' AND group_id = ? GROUP BY 1 ORDER BY 2 DESC, 1""",
        [source_id, group_id],
    ).fetchall()
    if held:
        f.held_back_summary = "Memberships held back: " + ", ".join(f"{code} {n}" for code, n in held)
    return f


def _membership(con, source_id: str, record_id: str) -> Found:
    f = Found("membership", record_id, source_id, False)
    f.reasons = _reasons(con, source_id, record_id)
    return f


def _referenced_only(con, source_id: str, an_id: str, kind: str) -> Found:
    """A person or group id that no record of the drop has, named by memberships only."""
    f = Found(kind, an_id, source_id, False)
    f.facts.append(f"only group memberships name this id: {NOT_FOUND}")
    column = "person_id" if kind == "person" else "group_id"
    f.held_back_memberships = [
        Reason(code, explain(code, visible), detail, visible, record_id)
        for record_id, code, detail, visible in con.execute(
            f"""SELECT coalesce(g.name, eg.name, x.record_id), x.reason_code, x.detail, x.visible_from FROM exclusions x
                LEFT JOIN groups g ON g.source_id = x.source_id AND g.group_id = x.group_id
                LEFT JOIN excluded_groups eg ON eg.source_id = x.source_id AND eg.group_id = x.group_id
                WHERE x.source_id = ? AND x.entity_type = 'membership' AND x.{column} = ? ORDER BY ALL""",
            [source_id, an_id],
        ).fetchall()
    ]
    return f


def _span(start: dt.date | None, end: dt.date | None) -> str:
    if start is None and end is None:
        return "no dates in the registry"
    return f"{start or '…'} – {end or 'open-ended'}"


def render(answer: Answer) -> list[str]:
    lines: list[str] = []
    if not answer.found:
        lines.append(f'Nothing matches "{answer.query}" on night {answer.as_of}: {NOT_FOUND}.')
    for f in answer.found:
        title = f"{f.kind.capitalize()} {f.id}"
        if f.name:
            title += f" — {f.name}"
        if f.email and f.email != MASK:
            title += f" <{f.email}>"
        lines.append(f"{title} (source {f.source_id}, night {answer.as_of})")
        if f.protected:
            lines.append("  Protected identity (skyddad identitet): only id, role and school are shown.")
        if f.kind == "person":
            verdict = f"yes, as {f.role}" if f.in_roster else "NO" + (f" (would be {f.role})" if f.role else "")
        else:
            verdict = "yes" if f.in_roster else "NO"
        lines.append(f"  In the roster: {verdict}")
        if f.schools:
            lines.append(f"  School{'s' if len(f.schools) > 1 else ''}: " + "; ".join(f.schools))
        lines += [f"  {fact[0].upper()}{fact[1:]}" for fact in f.facts]
        if f.groups:
            lines.append("  Groups: " + "; ".join(f.groups))
        if f.reasons:
            lines.append("  Held back because:")
            for r in f.reasons:
                lines.append(f"    - {r.code}: {r.explanation}")
                if r.detail:
                    lines.append(f"      ({r.detail})")
            if f.visible_from:
                lines.append(f"  Visible from: {f.visible_from} (the first night it appears if nothing changes in the registry)")
            else:
                lines.append("  Visible from: — (something must be fixed in the registry first)")
        if f.held_back_memberships:
            lines.append(f"  Memberships held back: {len({(r.about, r.code) for r in f.held_back_memberships})}")
            for r in f.held_back_memberships:
                where = f"{r.about}: " if r.about else ""
                lines.append(f"    - {where}{r.code}: {r.explanation}")
        if f.warnings:
            lines.append("  Notes (the record is synced as far as these go):")
            lines += [f"    - {w}" for w in f.warnings]
        if f.held_back_summary:
            lines.append(f"  {f.held_back_summary}")
        lines.append("")
    if answer.more:
        lines.append(f"{answer.more} more match(es) not shown: make the query longer, or use an id or e-mail.")
    if answer.protected_matches:
        lines.append(f"{answer.protected_matches} person(s) with a protected identity also match; "
                     "they are shown by id only.")
    return lines
