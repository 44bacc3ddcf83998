"""Conservation: every person, group and membership read from the registries ends up either in the roster or
with at least one exclusion row (persons who are only someone's guardian excepted); every activity with teachers
and every teacher entry (`Activity.teachers[]`, `Duty.assignmentRole[]`) becomes a teacher assignment or has a
warning naming it. Nothing vanishes silently.

Runs on the rules connection after `roster.sql`, comparing the canonical inputs (c_* views) with the outputs.
"""

from __future__ import annotations

import duckdb

_MISSING = {
    "person": """
        SELECT p.source_id, p.person_id AS record_id FROM c_persons p
        WHERE (EXISTS (SELECT 1 FROM c_duties d WHERE d.source_id = p.source_id AND d.person_id = p.person_id)
               OR EXISTS (SELECT 1 FROM c_enrolments e WHERE e.source_id = p.source_id AND e.person_id = p.person_id)
               OR NOT EXISTS (SELECT 1 FROM c_responsibles r
                              WHERE r.source_id = p.source_id AND r.responsible_id = p.person_id))
        EXCEPT SELECT source_id, user_id FROM source_users
        EXCEPT SELECT source_id, record_id FROM out_exclusions WHERE entity_type = 'person'
    """,
    "group": """
        SELECT source_id, group_id AS record_id FROM c_groups
        EXCEPT SELECT source_id, group_id FROM out_groups
        EXCEPT SELECT source_id, record_id FROM out_exclusions WHERE entity_type = 'group'
    """,
    "membership": """
        SELECT source_id, group_id || '/' || person_id AS record_id FROM c_group_memberships WHERE person_id IS NOT NULL
        UNION SELECT source_id, group_id || '/' || coalesce(person_id, duty_id) FROM c_teacher_assignments
        EXCEPT SELECT source_id, group_id || '/' || user_id FROM out_memberships
        EXCEPT SELECT source_id, record_id FROM out_exclusions WHERE entity_type = 'membership'
    """,
    "activity": """
        SELECT DISTINCT source_id, activity_id AS record_id FROM c_activity_teachers
        EXCEPT SELECT source_id, origin_id FROM c_teacher_assignments WHERE origin = 'activity'
        EXCEPT SELECT source_id, record_id FROM c_warnings WHERE entity_type = 'activity'
    """,
    # A warning names its entry in its detail (`Activity.teachers[2] ...`, `Duty.assignmentRole[1] ...`).
    "teacher_assignment": """
        SELECT source_id, activity_id || '/teachers[' || ordinal || ']' AS record_id FROM c_activity_teachers
        UNION ALL SELECT source_id, duty_id || '/assignmentRole[' || ordinal || ']' FROM c_duty_assignment_roles
        EXCEPT SELECT source_id, origin_id || CASE origin WHEN 'activity' THEN '/teachers[' ELSE '/assignmentRole[' END
                                        || origin_ordinal || ']'
               FROM c_teacher_assignments WHERE origin IN ('activity', 'assignmentRole')
        EXCEPT SELECT source_id, record_id || '/' || regexp_extract(detail, '^[A-Za-z]+[.]([A-Za-z]+[[][0-9]+[]])', 1)
               FROM c_warnings WHERE entity_type IN ('activity', 'duty')
        EXCEPT SELECT t.source_id, t.activity_id || '/teachers[' || t.ordinal || ']'
               FROM c_activity_teachers t JOIN c_warnings w
                 ON w.source_id = t.source_id AND w.entity_type = 'activity' AND w.record_id = t.activity_id
                AND w.code = 'ACTIVITY_WITHOUT_GROUPS'
    """,
}


def conservation_gaps(con: duckdb.DuckDBPyConnection, sample: int = 20) -> dict[str, dict]:
    """Per entity type: how many input records are neither in the roster nor excluded, and a sample of ids."""
    gaps = {}
    for entity, sql in _MISSING.items():
        rows = con.execute(f"SELECT source_id, record_id FROM ({sql}) ORDER BY ALL").fetchall()
        gaps[entity] = {"missing": len(rows), "sample": [f"{s}:{r}" for s, r in rows[:sample]]}
    return gaps
