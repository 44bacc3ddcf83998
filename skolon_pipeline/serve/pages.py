"""What each School Admin page shows, read from a scoped connection (scope.py): nothing here filters by scope,
because nothing outside the scope exists on the connection.

The answers about one person or group are `explain`'s (the same finder, reasons and explanations as
`skolon-pipeline explain`); counts are `diagnostics.school_counts` (the validation file's Summary); the
explanations are exports/explanations.py's. A person with a protected identity is masked as in the
validation file: name and e-mail read "Skyddad identitet", and nothing places them in a group.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from skolon_pipeline import explain
from skolon_pipeline.exports.explanations import EXPLANATIONS, MASK, explain_en, explain_sv

TREND_NIGHTS = 30
PAGE_ROWS = 200


def explanation(code: str, visible_from: dt.date | None, lang: str) -> str:
    return (explain_en if lang == "en" else explain_sv)(code, visible_from)


def problem(code: str, lang: str) -> str:
    e = EXPLANATIONS.get(code)
    if e is None:
        return code
    return e.problem_en if lang == "en" else e.problem_sv


PAST_SV = {
    "until": "I rostern till {0}",
    "removed": "; borttagen {0}: ",
    "left_export": "finns inte längre i elevregistrets export",
    "since": "I rostern sedan {0}",
    "gone": "Finns inte längre i elevregistrets export sedan {0} (senast med natten {1})",
    "never": "Aldrig i rostern: hölls tillbaka varje natt elevregistret skickade personen",
}


def past(f: explain.Found, lang: str) -> list[str]:
    """explain's earlier nights of a person (explain.past_lines) in the page's language: since when in the
    roster, or until when, removed on which night and why, and since when the registry no longer sends them."""
    if lang == "en":
        return explain.past_lines(f)
    return explain.past_lines(f, PAST_SV, lambda code: problem(code, "sv"))


def _dicts(cur: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[dict]:
    result = cur.execute(sql, params or [])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


# ─── Översikt ──────────────────────────────────────────────────────────────────────────────────────────────
@dataclass
class Overview:
    night: dt.date
    published_at: dt.datetime | None
    schools: list[dict]
    no_school: dict | None  # held-back records without a school (an authority admin's)
    reasons: dict[str | None, list[tuple[str, int]]]  # school_id → (reason code, records held back)
    sources: list[dict]
    trend: list[dict]


def overview(cur: duckdb.DuckDBPyConnection, night: dt.date, trend: list[dict]) -> Overview:
    schools = _dicts(
        cur,
        """
        SELECT s.school_id, s.name, s.school_unit_code, s.organisation_name, s.source_id, s.stale_since,
               c.students, c.teachers, c.staff, c.classes, c."groups" AS teaching_groups, c.memberships,
               c.excluded_persons, c.excluded_groups, c.excluded_memberships
        FROM roster.schools s JOIN diagnostics.school_counts c USING (source_id, school_id)
        ORDER BY s.name, s.school_id""",
    )
    reasons: dict[str | None, list[tuple[str, int]]] = {}
    for school_id, code, n in cur.execute(
        """SELECT school_id, reason_code, count(DISTINCT record_id) AS n FROM exclusions
           GROUP BY ALL ORDER BY school_id, n DESC, reason_code"""
    ).fetchall():
        reasons.setdefault(school_id, []).append((code, n))
    no_school = None
    if None in reasons:
        no_school = _dicts(
            cur,
            """
            SELECT count(DISTINCT record_id) FILTER (WHERE entity_type = 'person') AS excluded_persons,
                   count(DISTINCT record_id) FILTER (WHERE entity_type = 'group') AS excluded_groups,
                   count(DISTINCT record_id) FILTER (WHERE entity_type = 'membership') AS excluded_memberships
            FROM exclusions WHERE school_id IS NULL""",
        )[0]
    published_at = cur.execute("SELECT published_at FROM nightly.nights WHERE as_of = ?", [night]).fetchall()
    return Overview(
        night, published_at[0][0] if published_at else None, schools, no_school, reasons, sources(cur, night), trend
    )


def sources(cur: duckdb.DuckDBPyConnection, night: dt.date) -> list[dict]:
    """Each source of the scope's schools on the night: carried over since when, and its source-level warnings
    (a failed or stale drop)."""
    rows = _dicts(
        cur,
        """
        SELECT source_id, min(stale_since) AS stale_since FROM schools GROUP BY source_id ORDER BY source_id""",
    )
    warnings = {}
    for source_id, code, detail in cur.execute(
        "SELECT source_id, code, detail FROM warnings WHERE entity_type = 'source' ORDER BY ALL"
    ).fetchall():
        warnings.setdefault(source_id, []).append((code, detail))
    for r in rows:
        r["warnings"] = warnings.get(r["source_id"], [])
    return rows


def trend(cur: duckdb.DuckDBPyConnection) -> list[dict]:
    """Users in the roster and persons held back, in the scope, on each of the last 30 published nights."""
    return _dicts(
        cur,
        f"""
        WITH n AS (SELECT as_of FROM nightly.nights ORDER BY as_of DESC LIMIT {TREND_NIGHTS}),
        users AS (
            SELECT n.as_of, count(DISTINCT (a.source_id, a.user_id)) AS users
            FROM n JOIN history.school_affiliations a
              ON a.valid_from <= n.as_of AND (a.valid_to IS NULL OR a.valid_to > n.as_of)
            GROUP BY n.as_of),
        held AS (
            SELECT n.as_of, count(DISTINCT (x.source_id, x.record_id)) AS held_back
            FROM n JOIN history.exclusions x
              ON x.valid_from <= n.as_of AND (x.valid_to IS NULL OR x.valid_to > n.as_of)
            WHERE x.entity_type = 'person'
            GROUP BY n.as_of)
        SELECT n.as_of, coalesce(u.users, 0) AS users, coalesce(h.held_back, 0) AS held_back
        FROM n LEFT JOIN users u USING (as_of) LEFT JOIN held h USING (as_of) ORDER BY n.as_of""",
    )


# ─── Skola ─────────────────────────────────────────────────────────────────────────────────────────────────
@dataclass
class HeldBack:
    entity_type: str
    record_id: str
    person_id: str | None
    group_id: str | None
    name: str | None
    role: str | None
    protected: bool
    reasons: list[dict] = field(default_factory=list)  # code, detail, visible_from
    memberships: int = 0  # memberships held back only because this person or group is


@dataclass
class SchoolPage:
    school: dict
    counts: dict
    groups: list[dict]
    held_groups: list[dict]
    held_back: list[HeldBack]
    held_memberships: list[dict]
    reason_counts: list[tuple[str, int]]
    more: int


_PEOPLE = """(SELECT source_id, user_id AS person_id, given_name, family_name, email, role, protected_identity
              FROM users
              UNION ALL
              SELECT source_id, person_id, given_name, family_name, email, role, protected_identity
              FROM excluded_persons)"""
_DERIVED = ("MEMBER_EXCLUDED", "GROUP_EXCLUDED")


def school(cur: duckdb.DuckDBPyConnection, school_id: str, reason: str | None, page: int) -> SchoolPage | None:
    found = _dicts(
        cur,
        """SELECT school_id, source_id, name, school_unit_code, organisation_name, stale_since
                           FROM schools WHERE school_id = ? ORDER BY source_id""",
        [school_id],
    )
    if not found:
        return None
    s = found[0]
    key = [s["source_id"], school_id]
    counts = _dicts(
        cur,
        """SELECT students, teachers, staff, classes, "groups" AS teaching_groups, memberships,
                                   excluded_persons, excluded_groups, excluded_memberships
                            FROM diagnostics.school_counts WHERE source_id = ? AND school_id = ?""",
        key,
    )
    groups = _dicts(
        cur,
        """
        SELECT group_id, name, group_type, start_date, end_date FROM groups
        WHERE source_id = ? AND school_id = ? ORDER BY group_type, name, group_id""",
        key,
    )
    # the groups' members counted by group id (the copy's index on memberships.group_id: the school's rows only)
    members = {
        g: (students, teachers)
        for g, students, teachers in cur.execute(
            """SELECT group_id, count(*) FILTER (WHERE role = 'student'), count(*) FILTER (WHERE role = 'teacher')
           FROM memberships WHERE source_id = ? AND list_contains(?, group_id) GROUP BY 1""",
            [s["source_id"], [g["group_id"] for g in groups]],
        ).fetchall()
    }
    for g in groups:
        g["students"], g["teachers"] = members.get(g["group_id"], (0, 0))
    held_groups = _dicts(
        cur,
        """
        SELECT group_id, name, group_type, start_date, end_date FROM excluded_groups
        WHERE source_id = ? AND school_id = ? ORDER BY name, group_id""",
        key,
    )
    reason_counts = [
        tuple(r)
        for r in cur.execute(
            """SELECT reason_code, count(DISTINCT record_id) AS n FROM exclusions
           WHERE source_id = ? AND school_id = ? GROUP BY 1 ORDER BY n DESC, 1""",
            key,
        ).fetchall()
    ]
    # Persons and groups held back, each with all its reasons; memberships held back only because their person or
    # group is are counted on that person or group.
    rows = cur.execute(
        f"""
        WITH x AS (
            SELECT * FROM exclusions WHERE source_id = $source AND school_id = $school
              AND ($reason IS NULL OR reason_code = $reason)),
        records AS (
            SELECT DISTINCT entity_type, record_id FROM x WHERE entity_type IN ('person', 'group')),
        derived AS (
            SELECT CASE reason_code WHEN 'MEMBER_EXCLUDED' THEN person_id ELSE group_id END AS owner,
                   count(DISTINCT record_id) AS n
            FROM exclusions WHERE source_id = $source AND entity_type = 'membership'
              AND list_contains($derived, reason_code) GROUP BY 1)
        SELECT r.entity_type, r.record_id, p.given_name, p.family_name, p.role, coalesce(p.protected_identity, false),
               eg.name, e.reason_code, e.detail, e.visible_from, coalesce(d.n, 0)
        FROM records r
        JOIN exclusions e ON e.source_id = $source AND e.entity_type = r.entity_type AND e.record_id = r.record_id
        LEFT JOIN {_PEOPLE} p ON r.entity_type = 'person' AND p.source_id = $source AND p.person_id = r.record_id
        LEFT JOIN excluded_groups eg ON r.entity_type = 'group' AND eg.source_id = $source AND eg.group_id = r.record_id
        LEFT JOIN derived d ON d.owner = r.record_id
        ORDER BY r.entity_type DESC, p.family_name, p.given_name, eg.name, r.record_id, e.reason_code""",
        {"source": s["source_id"], "school": school_id, "reason": reason, "derived": list(_DERIVED)},
    ).fetchall()
    by_record: dict[tuple[str, str], HeldBack] = {}
    for etype, rid, given, family, role, protected, gname, code, detail, visible, n in rows:
        h = by_record.get((etype, rid))
        if h is None:
            name = gname if etype == "group" else (MASK if protected else " ".join(p for p in (given, family) if p))
            h = by_record[(etype, rid)] = HeldBack(
                etype,
                rid,
                rid if etype == "person" else None,
                rid if etype == "group" else None,
                name or None,
                role,
                protected,
                memberships=n,
            )
        h.reasons.append({"code": code, "detail": None if protected else detail, "visible_from": visible})
    held = list(by_record.values())
    more = max(0, len(held) - (page + 1) * PAGE_ROWS)
    held = held[page * PAGE_ROWS : (page + 1) * PAGE_ROWS]
    memberships = _dicts(
        cur,
        f"""
        SELECT x.record_id, x.person_id, x.group_id, x.reason_code AS code, x.visible_from,
               CASE WHEN p.protected_identity THEN NULL ELSE x.detail END AS detail,
               coalesce(p.protected_identity, false) AS protected,
               CASE WHEN p.protected_identity THEN getvariable('mask') ELSE concat_ws(' ', p.given_name, p.family_name) END AS person,
               coalesce(g.name, eg.name) AS "group"
        FROM exclusions x
        LEFT JOIN {_PEOPLE} p ON p.source_id = x.source_id AND p.person_id = x.person_id
        LEFT JOIN groups g ON g.source_id = x.source_id AND g.group_id = x.group_id
        LEFT JOIN excluded_groups eg ON eg.source_id = x.source_id AND eg.group_id = x.group_id
        WHERE x.source_id = $source AND x.school_id = $school AND x.entity_type = 'membership'
          AND NOT list_contains($derived, x.reason_code) AND ($reason IS NULL OR x.reason_code = $reason)
        ORDER BY "group", person, x.record_id LIMIT {PAGE_ROWS}""",
        {"source": s["source_id"], "school": school_id, "reason": reason, "derived": list(_DERIVED)},
    )
    # a protected person's membership would place them in a group: counted, not listed
    memberships = [m for m in memberships if not m["protected"]]
    return SchoolPage(s, counts[0] if counts else {}, groups, held_groups, held, memberships, reason_counts, more)


# ─── Person, Grupp, Sök: explain's answers ─────────────────────────────────────────────────────────────────
def search(cur: duckdb.DuckDBPyConnection, query: str, night: dt.date) -> explain.Answer:
    answer = explain.search(cur, query.strip(), night)
    return answer


def _one(cur, kind: str, an_id: str, night: dt.date) -> explain.Found | None:
    an_id = an_id.strip().lower()
    for f in explain.search(cur, an_id, night).found:
        if f.kind == kind and f.id == an_id:
            return f
    return None


@dataclass
class PersonPage:
    found: explain.Found
    schools: list[dict]
    groups: list[dict]
    changes: list[dict]


def person(cur: duckdb.DuckDBPyConnection, person_id: str, night: dt.date) -> PersonPage | None:
    f = _one(cur, "person", person_id, night)
    if f is None:
        return None
    key = [f.source_id, f.id]
    schools = _dicts(
        cur,
        """
        SELECT s.school_id, s.name, a.role, a.start_date, a.end_date
        FROM school_affiliations a JOIN schools s USING (source_id, school_id)
        WHERE a.source_id = ? AND a.user_id = ?
        UNION ALL
        SELECT p.school_id, s.name, NULL, NULL, NULL
        FROM excluded_persons p LEFT JOIN schools s USING (source_id, school_id)
        WHERE p.source_id = ? AND p.person_id = ? AND p.school_id IS NOT NULL
        ORDER BY 2, 1""",
        key + key,
    )
    groups = (
        []
        if f.protected
        else _dicts(
            cur,
            """
        SELECT g.group_id, g.name, g.group_type, m.role, m.start_date, m.end_date
        FROM memberships m JOIN groups g USING (source_id, group_id)
        WHERE m.source_id = ? AND m.user_id = ? ORDER BY g.group_type, g.name""",
            [f.source_id, f.id],
        )
    )
    changes = _changes(
        cur,
        """(entity_type = 'user' AND entity_id = $id)
                                OR (entity_type = 'school_affiliation' AND starts_with(entity_id, $id || '/'))""",
        f.source_id,
        f.id,
        f.protected,
    )
    return PersonPage(f, schools, groups, changes)


def _changes(cur, which: str, source_id: str, an_id: str, protected: bool = False) -> list[dict]:
    """The record's rows of history.changes, newest first (`which`: a condition on entity_type/entity_id)."""
    changes = _dicts(
        cur,
        f"""
        SELECT as_of, entity_type, change, changed_fields, reasons, detail FROM history.changes
        WHERE source_id = $s AND ({which}) ORDER BY as_of DESC, entity_type DESC LIMIT 100""",
        {"s": source_id, "id": an_id},
    )
    for c in changes if protected else ():
        c["detail"] = None
    return changes


@dataclass
class GroupPage:
    found: explain.Found
    members: list[dict]
    protected_members: int
    held_memberships: list[dict]
    changes: list[dict]


def group(cur: duckdb.DuckDBPyConnection, group_id: str, night: dt.date) -> GroupPage | None:
    f = _one(cur, "group", group_id, night)
    if f is None:
        return None
    key = [f.source_id, f.id]
    members = _dicts(
        cur,
        """
        WITH m AS MATERIALIZED (SELECT * FROM memberships WHERE source_id = ? AND group_id = ?)
        SELECT u.user_id, u.given_name, u.family_name, m.role, m.start_date, m.end_date, u.protected_identity
        FROM m JOIN users u USING (source_id, user_id)
        ORDER BY m.role DESC, u.family_name, u.given_name, u.user_id""",
        key,
    )
    protected = sum(1 for m in members if m["protected_identity"])
    members = [m for m in members if not m["protected_identity"]]
    held = _dicts(
        cur,
        f"""
        SELECT x.person_id, x.reason_code AS code, x.visible_from, x.detail,
               concat_ws(' ', p.given_name, p.family_name) AS person
        FROM exclusions x LEFT JOIN {_PEOPLE} p ON p.source_id = x.source_id AND p.person_id = x.person_id
        WHERE x.source_id = ? AND x.entity_type = 'membership' AND x.group_id = ?
          AND NOT coalesce(p.protected_identity, false)
        ORDER BY person, x.person_id, code""",
        key,
    )
    changes = _changes(cur, "entity_type = 'group' AND entity_id = $id", f.source_id, f.id)
    return GroupPage(f, members, protected, held, changes)
