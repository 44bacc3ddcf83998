"""`skolon-pipeline explain QUERY`: is this person or group in the roster, and if not, why not and from when —
or, for someone the registry no longer sends, when and why they left.

QUERY is an id (person, group, or a membership's `<group_id>/<person_id>`), an e-mail address, or part of a
name; names match case- and accent-insensitively ("bjork" finds "Björk"), every word of the query in the
name. An address is matched as the registry sent it (also an invalid one), and when nothing has exactly that
address, as an admin would have typed it: "anna.berg@elev.lindby.se" finds the registry's
"anna.berg@@elev.lindby.se", and failing that, the name in the address ("anna berg"). Everyone in the
night's drop is searched, held-back persons included, and then everyone of the earlier published nights: for
them the answer says when they were last in the roster and why they left (history.changes and that night's
exclusions). Only when nothing in any night matches does it say "not in any registry drop".

`find` opens the warehouse read-only; `search` answers on a connection already prepared with
exports.people.show_night (the School Admin view reuses it); both return data, and `render` makes the text.
A search reads the night's search tables (`index`: everyone findable that night and on the nights before it,
names and addresses normalised once); `search` makes them as temp tables when the connection has none for the
night, and the School Admin builds them once per scoped copy, so a keystroke there never scans the history.
Protected identities are masked by the same views as the validation file (exports/people.sql): such a person
is found by id only, shown with id, role and school; a name or e-mail search never finds them nor says that
they exist.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from skolon_pipeline.exports.explanations import EXPLANATIONS, MASK, NOT_FOUND, explain, explain_warning
from skolon_pipeline.exports.people import show_night
from skolon_pipeline.publish import snapshot

MAX_MATCHES = 10


@dataclass
class Reason:
    code: str
    explanation: str
    detail: str | None
    visible_from: dt.date | None
    about: str | None = None  # for a held-back membership: the group (or person) it concerns


@dataclass
class Past:
    """A person's earlier nights, as far as they explain tonight's answer."""

    first_synced: dt.date | None = None  # the first published night they were in the roster
    last_in_roster: dt.date | None = None  # set when they are not in the roster tonight but were before
    removed_on: dt.date | None = None  # the first published night after last_in_roster
    removal_reasons: list[Reason] = field(default_factory=list)  # why, that night (empty: left the export)
    last_in_drop: dt.date | None = None  # set when the registry no longer sends them: the last night it did
    gone_since: dt.date | None = None  # the first published night the registry no longer sent them


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
    in_drop: bool = True  # False: known from an earlier night only
    matched_by: str | None = None  # how an inexact query found it
    schools: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # roster memberships, as text
    reasons: list[Reason] = field(default_factory=list)  # the record's own reasons
    held_back_memberships: list[Reason] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)  # a group's type, dates and member counts
    held_back_summary: str | None = None  # a group's held-back memberships, counted per reason
    warnings: list[str] = field(default_factory=list)  # values repaired or dropped; the record stays
    past: Past | None = None

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


def _tokens(query: str) -> list[str]:
    return [t for t in query.lower().split() if t]


# The search tables of one night, made from people.sql's views (so masked as everywhere): `search_people`, the
# night's drop as shown_people shows it, and `search_past`, every row of the earlier nights' history of persons
# the night's drop no longer has. The columns a query compares (`*_key`) are normalised here, once: names lower
# case without accents, the address lower case and as an admin would type it; they are NULL for a protected
# identity, whom only the id finds.
_INDEX_SQL = """
CREATE OR REPLACE {kind} search_people AS
SELECT *,
       CASE WHEN NOT protected_identity THEN strip_accents(lower(given_name)) END AS given_key,
       CASE WHEN NOT protected_identity THEN strip_accents(lower(family_name)) END AS family_key,
       CASE WHEN NOT protected_identity THEN lower(email) END AS email_key,
       CASE WHEN NOT protected_identity THEN {address} END AS address_key
FROM shown_people;
CREATE OR REPLACE {kind} search_past AS
SELECT *,
       CASE WHEN NOT protected_identity THEN strip_accents(lower(given_name)) END AS given_key,
       CASE WHEN NOT protected_identity THEN strip_accents(lower(family_name)) END AS family_key,
       CASE WHEN NOT protected_identity THEN lower(email) END AS email_key
FROM (SELECT source_id, user_id AS person_id, given_name, family_name, email, role,
             coalesce(protected_identity, false) AS protected_identity, valid_from
      FROM history.users WHERE valid_to <= getvariable('search_night')
      UNION ALL
      SELECT source_id, person_id, given_name, family_name, email, role,
             coalesce(protected_identity, false), valid_from
      FROM history.excluded_persons WHERE valid_to <= getvariable('search_night')) e
WHERE NOT EXISTS (SELECT 1 FROM shown_people p WHERE p.source_id = e.source_id AND p.person_id = e.person_id);
CREATE OR REPLACE {kind} search_night AS SELECT getvariable('search_night') AS night;
"""


def index(con: duckdb.DuckDBPyConnection, night: dt.date, temp: bool = True) -> None:
    """The search tables for `night` on `con` (prepared with exports.people.show_night): temp tables for one
    connection (the CLI), or tables of the database that every cursor of it reads (a School Admin copy)."""
    con.execute("SET VARIABLE search_night = ?", [night])
    con.execute(_INDEX_SQL.format(kind="TEMP TABLE" if temp else "TABLE", address=_ADDRESS_KEY.format("email")))


def _indexed(con: duckdb.DuckDBPyConnection, night: dt.date) -> None:
    """The search tables for `night`, made now unless the connection has them."""
    try:
        built = con.execute("SELECT night FROM search_night").fetchone()[0]
    except duckdb.CatalogException:
        built = None
    if built != night:
        index(con, night)


def find(warehouse_path: Path, query: str, as_of: dt.date | None = None) -> Answer:
    from skolon_pipeline.exports.validation_file import resolve_night

    with snapshot.connect_published(warehouse_path) as con:
        night = resolve_night(con, as_of)
        show_night(con, night)
        return search(con, query, night)


def _name_match(tokens: list[str]) -> str:
    """Every token in the given or the family name (the search tables' normalised columns)."""
    one = "(contains(given_key, strip_accents(?)) OR contains(family_key, strip_accents(?)))"
    return " AND ".join([one] * len(tokens)) or "false"


def _twice(tokens: list[str]) -> list[str]:
    return [t for t in tokens for _ in (0, 1)]


# An address as an admin would type it: lower case, no spaces, one '@', no repeated or trailing dots.
_ADDRESS_KEY = r"""regexp_replace(regexp_replace(regexp_replace(lower({0}), '\s+', '', 'g'), '@+', '@', 'g'),
                                  '\.+(@|$)|\.{{2,}}', '\1', 'g')"""


def _address_name(query: str) -> list[str]:
    """'anna.berg@elev.lindby.se' → ['anna', 'berg']: the words of an address's local part, digits dropped."""
    local = query.split("@", 1)[0]
    return [w for w in re.split(r"[._\-+\d]+", local.lower()) if len(w) > 1]


def search(con: duckdb.DuckDBPyConnection, query: str, night: dt.date) -> Answer:
    """Everyone and everything matching `query` on `night` and, for persons, on the published nights before it.
    `con` is prepared with exports.people.show_night(con, night)."""
    query = query.strip()
    q = query.lower()
    tokens = _tokens(query)
    _indexed(con, night)

    # by id (protected persons too, shown masked), or by e-mail or name among those findable (never a protected
    # person: the search tables have no name or address keys for them)
    def matching(where: str, params: list) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in con.execute(
                f"""SELECT source_id, person_id FROM search_people WHERE NOT protected_identity AND ({where})
                ORDER BY family_name, given_name, person_id""",
                params,
            ).fetchall()
        ]

    by_id = [
        (r[0], r[1])
        for r in con.execute(
            "SELECT DISTINCT source_id, person_id FROM search_people WHERE person_id = ? ORDER BY ALL", [q]
        ).fetchall()
    ]
    keys = by_id + [
        k for k in matching(f"email_key = ? OR ({_name_match(tokens)})", [q, *_twice(tokens)]) if k not in by_id
    ]
    matched_by = None
    if not keys and "@" in q:
        keys = matching(f"address_key = {_ADDRESS_KEY.format('?')}", [q])
        matched_by = "the address as typed, close to the address the registry sent"
        words = _address_name(q)
        if not keys and words:
            keys = matching(_name_match(words), _twice(words))
            matched_by = f"the name in the address ({' '.join(words)}); no one has this address"
    shown = {
        (r[0], r[1]): r
        for r in con.execute(
            """SELECT source_id, person_id, given_name, family_name, email, role, protected_identity, included, school_id
           FROM search_people WHERE list_contains(?, person_id)""",
            [[p for _, p in keys[:MAX_MATCHES]]],
        ).fetchall()
    }
    people = _persons(con, [shown[k] for k in keys[:MAX_MATCHES] if k in shown], night)
    for f in people:
        f.matched_by = None if (f.source_id, f.id) in by_id else matched_by
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
    known = {k[1] for k in keys} | {g[1] for g in groups}
    total = len(keys) + len(groups)
    found += people
    for row in groups[: max(0, MAX_MATCHES - len(found))]:
        found.append(_group(con, row))
    # ids only the exclusions know: a membership, or a person/group a membership names that is not in the drop
    if q not in known:
        for source_id, record_id, entity_type, person_id, protected in con.execute(
            """SELECT DISTINCT source_id, record_id, entity_type, person_id, protected_identity FROM shown_exclusions
               WHERE record_id = ? OR person_id = ? OR group_id = ? ORDER BY ALL""",
            [q, q, q],
        ).fetchall():
            if entity_type == "membership" and record_id != q:
                if (source_id, q) not in {(f.source_id, f.id) for f in found}:
                    found.append(_referenced_only(con, source_id, q, "person" if person_id == q else "group"))
                    total += 1
                continue
            if entity_type == "membership" and protected:
                continue
            found.append(
                _membership(con, source_id, record_id)
                if entity_type == "membership"
                else Found(entity_type, record_id, source_id, False, reasons=_reasons(con, source_id, record_id))
            )
            total += 1
    # persons of earlier nights the registry no longer sends
    n_gone, gone = _gone(
        con,
        q,
        tokens,
        night,
        {(f.source_id, f.id) for f in found if f.kind == "person"},
        max(0, MAX_MATCHES - len(found)),
    )
    total += n_gone
    found += gone
    return Answer(query, night, found, more=max(0, total - len(found)))


def _reasons(con, source_id: str, record_id: str) -> list[Reason]:
    return [
        Reason(code, explain(code, visible), detail, visible)
        for code, detail, visible in con.execute(
            """SELECT reason_code, detail, visible_from FROM shown_exclusions
               WHERE source_id = ? AND record_id = ? ORDER BY reason_code, detail""",
            [source_id, record_id],
        ).fetchall()
    ]


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
        "SELECT school_id, name FROM schools WHERE source_id = ? AND list_contains(?, school_id)",
        [source_id, school_ids],
    ).fetchall()
    return dict(rows)


def _persons(con, rows: list[tuple], night: dt.date, in_drop: bool = True) -> list[Found]:
    """Found persons from shown_people rows (source_id, person_id, given, family, email, role, protected,
    included, school_id), with their schools, groups, reasons, held-back memberships, warnings and past, a few
    queries for all of them at once (each query over 200 000 persons costs about as much for one as for ten)."""
    found = []
    for source_id, person_id, given, family, email, role, protected, included, _ in rows:
        f = Found("person", person_id, source_id, included, role=role, protected=protected, in_drop=in_drop)
        f.name = MASK if protected else (" ".join(p for p in (given, family) if p) or None)
        f.email = email
        found.append(f)
    if not found:
        return found
    ids = sorted({f.id for f in found})
    by_key = {(f.source_id, f.id): f for f in found}

    def each(sql: str, params: list):
        for row in con.execute(sql, [ids, *params]).fetchall():
            f = by_key.get((row[0], row[1]))
            if f is not None:
                yield f, row[2:]

    if in_drop:
        for f, (name, r, s, e) in each(
            """WITH a AS MATERIALIZED (SELECT * FROM school_affiliations WHERE list_contains(?, user_id))
               SELECT a.source_id, a.user_id, coalesce(s.name, a.school_id), a.role, a.start_date, a.end_date
               FROM a LEFT JOIN schools s USING (source_id, school_id) ORDER BY 3""",
            [],
        ):
            f.schools.append(f"{name} ({r}, {_span(s, e)})")
        for f, (name, gtype, r, s, e) in each(
            """WITH m AS MATERIALIZED (SELECT * FROM memberships WHERE list_contains(?, user_id))
               SELECT m.source_id, m.user_id, g.name, g.group_type, m.role, m.start_date, m.end_date
               FROM m JOIN groups g USING (source_id, group_id) ORDER BY g.group_type, g.name""",
            [],
        ):
            if not f.protected:
                f.groups.append(f"{name} ({gtype}, {r}" + (f", {_span(s, e)})" if s or e else ")"))
        held_schools = {(r[0], r[1]): r[8] for r in rows if not r[7] and r[8]}
        for (source_id, _), school_id in held_schools.items():
            names = _school_names(con, source_id, [school_id])
            by_key[(source_id, _)].schools = [names.get(school_id, f"{school_id} (not a school unit in the drop)")]
        for f, (code, detail, visible) in each(
            """SELECT source_id, record_id, reason_code, detail, visible_from FROM shown_exclusions
               WHERE list_contains(?, record_id) AND entity_type = 'person' ORDER BY reason_code, detail""",
            [],
        ):
            f.reasons.append(Reason(code, explain(code, visible), detail, visible))
        for f, (code, detail) in each(
            """SELECT source_id, record_id, code, detail FROM warnings
               WHERE list_contains(?, record_id) AND entity_type = 'person' ORDER BY ALL""",
            [],
        ):
            f.warnings.append(
                f"{code}: {explain_warning(code)}" + ("" if f.protected or not detail else f" ({detail})")
            )
        # a protected person's groups could identify them: their held-back memberships are counted, never named
        for f, (code, detail, visible, group) in each(
            """WITH x AS MATERIALIZED (
                   SELECT * FROM shown_exclusions WHERE list_contains(?, person_id) AND entity_type = 'membership')
               SELECT x.source_id, x.person_id, x.reason_code, x.detail, x.visible_from,
                      coalesce(g.name, eg.name, x.group_id) AS about
               FROM x
               LEFT JOIN groups g ON g.source_id = x.source_id AND g.group_id = x.group_id
               LEFT JOIN excluded_groups eg ON eg.source_id = x.source_id AND eg.group_id = x.group_id
               ORDER BY about, x.record_id, x.reason_code""",
            [],
        ):
            f.held_back_memberships.append(
                Reason(code, explain(code, visible), detail, visible, None if f.protected else group)
            )
    _pasts(con, found, night)
    return found


def _pasts(con, found: list[Found], night: dt.date) -> None:
    """When each person was in the roster and in the registry's drops, up to `night`, from the history intervals."""
    nights = [
        n
        for (n,) in con.execute("SELECT as_of FROM nightly.nights WHERE as_of <= ? ORDER BY as_of", [night]).fetchall()
    ]
    spans: dict[tuple[str, str], list[tuple[str, dt.date, dt.date | None]]] = {}
    for source_id, person_id, kind, vf, vt in con.execute(
        """SELECT source_id, user_id, 'roster', valid_from, valid_to FROM history.users
           WHERE list_contains($ids, user_id) AND valid_from <= $n
           UNION ALL
           SELECT source_id, person_id, 'held', valid_from, valid_to FROM history.excluded_persons
           WHERE list_contains($ids, person_id) AND valid_from <= $n""",
        {"ids": sorted({f.id for f in found}), "n": night},
    ).fetchall():
        spans.setdefault((source_id, person_id), []).append((kind, vf, vt))

    def after(d: dt.date) -> dt.date | None:
        return next((n for n in nights if n > d), None)

    for f in found:
        mine = spans.get((f.source_id, f.id), [])

        def on(kinds: tuple[str, ...], mine=mine) -> list[dt.date]:
            return [n for n in nights if any(k in kinds and vf <= n and (vt is None or vt > n) for k, vf, vt in mine)]

        past = f.past = Past()
        rostered = on(("roster",))
        past.first_synced = rostered[0] if rostered else None
        if rostered and not f.in_roster:
            past.last_in_roster = rostered[-1]
            past.removed_on = after(rostered[-1])
            if past.removed_on is not None:
                past.removal_reasons = _reasons_on(con, f.source_id, f.id, past.removed_on)
        if not f.in_drop:
            sent = on(("roster", "held"))
            past.last_in_drop = sent[-1] if sent else None
            past.gone_since = after(sent[-1]) if sent else None


def _reasons_on(con, source_id: str, person_id: str, d: dt.date) -> list[Reason]:
    """The person's reasons on an earlier night, shown as tonight's are (exports/people.sql's shown_detail)."""
    protected = con.execute(
        """SELECT bool_or(protected_identity) FROM history.excluded_persons_as_of(?) WHERE source_id = ? AND person_id = ?""",
        [d, source_id, person_id],
    ).fetchone()[0]
    return [
        Reason(code, explain(code, visible), None if protected else detail, visible)
        for code, detail, visible in con.execute(
            """SELECT reason_code, shown_detail(reason_code, detail), visible_from FROM history.exclusions_as_of(?)
               WHERE source_id = ? AND entity_type = 'person' AND record_id = ? ORDER BY reason_code, detail""",
            [d, source_id, person_id],
        ).fetchall()
    ]


def _gone(
    con, q: str, tokens: list[str], night: dt.date, seen: set[tuple[str, str]], limit: int
) -> tuple[int, list[Found]]:
    """Persons of published nights before `night` who are not in its drop, by id, e-mail or name (the latest
    row of each; a protected person by id only, masked): how many, and the first `limit` of them."""
    rows = [
        (s, p, g, f, MASK if prot else e, r, prot, False, None)
        for s, p, g, f, e, r, prot in _gone_rows(con, q, tokens, night)
        if (s, p) not in seen
    ]
    return len(rows), _persons(con, rows[:limit], night, in_drop=False)


def _gone_rows(con, q: str, tokens: list[str], night: dt.date) -> list[tuple]:
    """search_past's rows (the earlier nights' history of persons the night's drop does not have) that match,
    one per person: the latest matching row (a name someone had before finds them as they were then)."""
    match = _name_match(tokens)
    return con.execute(
        f"""SELECT source_id, person_id, arg_max(given_name, valid_from) AS given_name,
                   arg_max(family_name, valid_from) AS family_name, arg_max(email, valid_from),
                   arg_max(role, valid_from), bool_or(protected_identity) AS protected
            FROM search_past
            WHERE person_id = ? OR (NOT protected_identity AND (email_key = ? OR ({match})))
            GROUP BY source_id, person_id
            HAVING person_id = ? OR NOT bool_or(protected_identity)
            ORDER BY person_id <> ?, family_name, given_name, person_id""",
        [q, q, *_twice(tokens), q, q],
    ).fetchall()


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
            f"""SELECT coalesce(g.name, eg.name, x.record_id), x.reason_code, x.detail, x.visible_from
                FROM shown_exclusions x
                LEFT JOIN groups g ON g.source_id = x.source_id AND g.group_id = x.group_id
                LEFT JOIN excluded_groups eg ON eg.source_id = x.source_id AND eg.group_id = x.group_id
                WHERE x.source_id = ? AND x.entity_type = 'membership' AND x.{column} = ?
                  AND NOT x.protected_identity ORDER BY ALL""",
            [source_id, an_id],
        ).fetchall()
    ]
    return f


def _span(start: dt.date | None, end: dt.date | None) -> str:
    if start is None and end is None:
        return "no dates in the registry"
    return f"{start or '…'} – {end or 'open-ended'}"


# The words of past_lines, in English (the School Admin passes its Swedish ones)
PAST_EN = {
    "until": "In the roster until {0}",
    "removed": "; removed on {0}: ",
    "left_export": "no longer in the registry's export",
    "since": "In the roster since {0}",
    "gone": "No longer in the registry's export since {0} (last sent for the night of {1})",
    "never": "Never in the roster: held back on every night the registry sent this person",
}


def _problem_en(code: str) -> str:
    return EXPLANATIONS[code].problem_en if code in EXPLANATIONS else code


def past_lines(f: Found, words: dict[str, str] = PAST_EN, problem=_problem_en) -> list[str]:
    """The person's earlier nights in words: 'In the roster until 2025-12-14; removed on 2025-12-15: ...' (why
    they left: what happened, `problem(code)`, not what to fix)."""
    p = f.past
    if p is None:
        return []
    lines = []
    if p.last_in_roster is not None:
        line = words["until"].format(p.last_in_roster)
        if p.removed_on is not None:
            gone = p.gone_since == p.removed_on or not p.removal_reasons
            line += words["removed"].format(p.removed_on) + (
                words["left_export"]
                if gone
                else "; ".join(problem(r.code) + (f" ({r.detail})" if r.detail else "") for r in p.removal_reasons)
            )
        lines.append(line)
    elif f.in_roster and p.first_synced is not None:
        lines.append(words["since"].format(p.first_synced))
    if not f.in_drop:
        if p.gone_since is not None:
            lines.append(words["gone"].format(p.gone_since, p.last_in_drop))
        if p.last_in_roster is None:
            lines.append(words["never"])
    return lines


def render(answer: Answer) -> list[str]:
    lines: list[str] = []
    if not answer.found:
        lines.append(f'Nothing matches "{answer.query}" on night {answer.as_of} or any night before it: {NOT_FOUND}.')
    for f in answer.found:
        title = f"{f.kind.capitalize()} {f.id}"
        if f.name:
            title += f" — {f.name}"
        if f.email and f.email != MASK:
            title += f" <{f.email}>"
        lines.append(f"{title} (source {f.source_id}, night {answer.as_of})")
        if f.matched_by:
            lines.append(f"  Found by {f.matched_by}.")
        if f.protected:
            lines.append("  Protected identity (skyddad identitet): only id, role and school are shown.")
        if f.kind == "person":
            verdict = (
                f"yes, as {f.role}" if f.in_roster else "NO" + (f" (would be {f.role})" if f.role and f.in_drop else "")
            )
        else:
            verdict = "yes" if f.in_roster else "NO"
        lines.append(f"  In the roster: {verdict}")
        lines += [f"  {line}" for line in past_lines(f)]
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
                lines.append(
                    f"  Visible from: {f.visible_from} (the first night it appears if nothing changes in the registry)"
                )
            else:
                lines.append("  Visible from: — (something must be fixed in the registry first)")
        if f.held_back_memberships:
            lines.append(
                f"  Memberships held back: {len({(r.about, r.code) for r in f.held_back_memberships})}"
                if not f.protected
                else f"  Memberships held back: {len(f.held_back_memberships)}"
            )
            if not f.protected:
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
    return lines
