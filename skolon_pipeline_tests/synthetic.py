"""A large published night built directly in DuckDB SQL (no registry drop, no rules): for timing `explain` and
the exports on a national-size warehouse in a second or two of set-up.

One school authority with `persons / 2000` schools; every 12th person a teacher, every 40th excluded (with a
school e-mail, a reason and sometimes visible_from), every 1000th with a protected identity; each student in
one class and four teaching groups; family names cycle through a list with Swedish letters, so "bjork"
matches many people. One person has a name nobody else has: UNIQUE_NAME.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from skolon_pipeline.publish import warehouse

NIGHT = dt.date(2026, 9, 1)
SOURCE = "big"
UNIQUE_ID = "person-123457"
UNIQUE_NAME = ("Åsa-Britt", "Zätterström")
EXCLUDED_ID = "person-4000"  # every 40th person is held back
FAMILY = [
    "Andersson",
    "Björk",
    "Öberg",
    "Åberg",
    "Lindström",
    "Ekström",
    "Nyström",
    "Sjögren",
    "Håkansson",
    "Karlsson",
    "Nilsson",
    "Eriksson",
    "Larsson",
    "Olsson",
    "Persson",
    "Svensson",
    "Gustafsson",
    "Pettersson",
    "Jönsson",
    "Jansson",
    "Hansson",
    "Bengtsson",
    "Jakobsson",
    "Magnusson",
    "Lindberg",
]
GIVEN = [
    "Anna",
    "Erik",
    "Maria",
    "Lars",
    "Karin",
    "Per",
    "Sofia",
    "Johan",
    "Märta",
    "Örjan",
    "Åsa",
    "Elin",
    "Emil",
    "Ida",
    "Oskar",
    "Saga",
    "Hugo",
    "Alva",
    "Nils",
    "Wilma",
]


def build(path: Path, persons: int = 200_000) -> Path:
    schools = max(1, persons // 2000)
    with warehouse.connect(path) as con:
        warehouse.ensure_schema(con)
        con.execute("SET VARIABLE d = ?", [NIGHT])
        con.execute("SET VARIABLE schools = ?", [schools])
        con.execute("SET VARIABLE given = ?", [GIVEN])
        con.execute("SET VARIABLE family = ?", [FAMILY])
        con.execute(
            "INSERT INTO nightly.nights (as_of, published_at, run_id, sources) VALUES (getvariable('d'), current_timestamp, 'synthetic', ['big'])"
        )
        con.execute("""INSERT INTO history.schools (valid_from, school_id, source_id, name, school_unit_code, organisation_id, organisation_name)
            SELECT getvariable('d'), 'school-' || i, 'big', 'Skola ' || i, lpad(CAST(10000000 + i AS VARCHAR), 8, '0'),
                   'authority-1', 'Stora kommunen'
            FROM range(getvariable('schools')) t(i)""")
        con.execute(
            """CREATE TEMP TABLE p AS
            SELECT i, 'person-' || i AS pid, 'school-' || (i % getvariable('schools')) AS school_id,
                   getvariable('given')[1 + i % 20] AS given_name,
                   getvariable('family')[1 + (i // 20) % 25] AS family_name,
                   lower(strip_accents('p' || i || '.' || getvariable('family')[1 + (i // 20) % 25])) || '@skola.test' AS email,
                   CASE WHEN i % 12 = 0 THEN 'teacher' ELSE 'student' END AS role,
                   i % 1000 = 7 AS protected, i % 40 = 0 AS excluded
            FROM range(?) t(i)""",
            [persons],
        )
        con.execute("UPDATE p SET given_name = ?, family_name = ? WHERE pid = ?", [*UNIQUE_NAME, UNIQUE_ID])
        con.execute("""INSERT INTO history.users (valid_from, user_id, source_id, given_name, family_name, email, role, protected_identity)
                       SELECT getvariable('d'), pid, 'big', given_name, family_name, email, role,
                       protected FROM p WHERE NOT excluded""")
        con.execute("""INSERT INTO history.school_affiliations (valid_from, user_id, school_id, role, start_date, end_date, source_id)
                       SELECT getvariable('d'), pid, school_id, role,
                       DATE '2025-08-18', NULL, 'big' FROM p WHERE NOT excluded""")
        con.execute("""INSERT INTO history.excluded_persons (valid_from, source_id, person_id, given_name, family_name, email, role, school_id,
                       protected_identity) SELECT getvariable('d'), 'big', pid, given_name, family_name,
                       email, role, school_id, protected FROM p WHERE excluded""")
        con.execute("""INSERT INTO history.exclusions (valid_from, source_id, entity_type, record_id, person_id, group_id, school_id,
                       reason_code, detail, visible_from) SELECT getvariable('d'), 'big', 'person', pid, pid, NULL, school_id,
                       CASE WHEN i % 80 = 0 THEN 'PLACEMENT_NOT_STARTED' ELSE 'MISSING_FAMILY_NAME' END,
                       CASE WHEN i % 80 = 0 THEN 'the enrolment starts on 2026-10-01' ELSE 'familyName is blank' END,
                       CASE WHEN i % 80 = 0 THEN DATE '2026-10-01' END
                       FROM p WHERE excluded""")
        # 10 classes and 40 teaching groups per school
        con.execute("""INSERT INTO history.groups (valid_from, group_id, source_id, school_id, name, group_type, start_date, end_date)
                       SELECT getvariable('d'), 'group-' || s || '-' || g, 'big', 'school-' || s,
                       CASE WHEN g < 10 THEN 'Klass ' || g ELSE 'Undervisning ' || g END,
                       CASE WHEN g < 10 THEN 'Klass' ELSE 'Undervisning' END, DATE '2025-08-18', DATE '2026-06-12'
                       FROM range(getvariable('schools')) a(s), range(50) b(g)""")
        con.execute("""INSERT INTO history.memberships (valid_from, group_id, user_id, role, start_date, end_date, source_id)
            SELECT getvariable('d'), 'group-' || (i % getvariable('schools')) || '-' || g, pid, role, NULL, NULL, 'big'
            FROM p, (SELECT unnest([0, 10, 20, 30, 40]) AS k) ks,
                 LATERAL (SELECT CASE WHEN k = 0 THEN (i // getvariable('schools')) % 10
                                      ELSE k + (i // getvariable('schools')) % 10 END AS g)
            WHERE NOT excluded""")
        con.execute("""INSERT INTO history.exclusions (valid_from, source_id, entity_type, record_id, person_id, group_id, school_id,
                       reason_code, detail, visible_from) SELECT getvariable('d'), 'big', 'membership',
                       'group-' || (i % getvariable('schools')) || '-' || ((i // getvariable('schools')) % 10) || '/' || pid,
                       pid, 'group-' || (i % getvariable('schools')) || '-' || ((i // getvariable('schools')) % 10),
                       school_id, 'MEMBER_EXCLUDED', 'the person is not in the roster', NULL FROM p WHERE excluded""")
        # the drop the night was read from: the day before
        con.execute("""INSERT INTO history.source_drops (valid_from, source_id, drop_date, drop_age_days, max_drop_age_days,
                       status) VALUES (getvariable('d'), 'big', getvariable('d') - 1, 1, 3, 'fresh')""")
    return path
