"""Conservation: every person, group and membership read from the registries ends up either in the roster or
with at least one exclusion row (persons who are only someone's guardian excepted). Nothing vanishes silently.

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
}


def conservation_gaps(con: duckdb.DuckDBPyConnection, sample: int = 20) -> dict[str, dict]:
    """Per entity type: how many input records are neither in the roster nor excluded, and a sample of ids."""
    gaps = {}
    for entity, sql in _MISSING.items():
        rows = con.execute(f"SELECT source_id, record_id FROM ({sql}) ORDER BY ALL").fetchall()
        gaps[entity] = {"missing": len(rows), "sample": [f"{s}:{r}" for s, r in rows[:sample]]}
    return gaps
