"""The benchmark's floor: what no SS12000 reader can avoid.

DuckDB reads every record of a drop once into typed tables (persons with their e-mails and enrolments, groups
with their memberships, duties with their assignment roles, activities with their groups and teachers) and
nothing else: no validation, no rules, no publish. The night's time divided by this is the overhead of the
product; the issue's target is at most 3x at 200 000 persons.

    python bench/floor.py DROP_FOLDER          # prints seconds and rows per table
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb

ENTITIES = ("organisations", "persons", "duties", "groups", "activities")

# The typed shape of each entity's records, as far as the roster needs it.
RECORD_TYPES = {
    "organisations": "STRUCT(id VARCHAR, displayName VARCHAR, organisationType VARCHAR, schoolUnitCode VARCHAR, "
    "parentOrganisation STRUCT(id VARCHAR), schoolTypes VARCHAR[])",
    "persons": "STRUCT(id VARCHAR, givenName VARCHAR, familyName VARCHAR, securityMarking VARCHAR, "
    'personStatus VARCHAR, emails STRUCT("value" VARCHAR, "type" VARCHAR)[], '
    "enrolments STRUCT(enroledAt STRUCT(id VARCHAR), schoolType VARCHAR, startDate DATE, endDate DATE)[])",
    "duties": "STRUCT(id VARCHAR, person STRUCT(id VARCHAR), dutyAt STRUCT(id VARCHAR), dutyRole VARCHAR, "
    'startDate DATE, endDate DATE, assignmentRole STRUCT("group" STRUCT(id VARCHAR), '
    "assignmentRoleType VARCHAR, startDate DATE, endDate DATE)[])",
    "groups": "STRUCT(id VARCHAR, displayName VARCHAR, groupType VARCHAR, organisation STRUCT(id VARCHAR), "
    "startDate DATE, endDate DATE, groupMemberships STRUCT(person STRUCT(id VARCHAR), startDate DATE, "
    "endDate DATE)[])",
    "activities": "STRUCT(id VARCHAR, displayName VARCHAR, organisation STRUCT(id VARCHAR), startDate DATE, "
    "endDate DATE, groups STRUCT(id VARCHAR)[], teachers STRUCT(duty STRUCT(id VARCHAR))[])",
}

# Nested arrays become their own tables, as the canonical model has them.
CHILD_TABLES = {
    "person_emails": ("persons", "emails"),
    "enrolments": ("persons", "enrolments"),
    "assignment_roles": ("duties", "assignmentRole"),
    "memberships": ("groups", "groupMemberships"),
    "activity_groups": ("activities", "groups"),
    "activity_teachers": ("activities", "teachers"),
}


def entity_files(drop: Path, entity: str) -> list[str]:
    """An entity is `<entity>.json` or a folder `<entity>/` of page files (both shapes of a drop)."""
    folder = drop / entity
    files = sorted(folder.glob("*.json")) if folder.is_dir() else [drop / f"{entity}.json"]
    return [str(f) for f in files if f.exists()]


def read_floor(drop: Path, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, int]:
    """Reads every record of the drop into typed tables; returns the row count of each table."""
    con = con or duckdb.connect()
    largest = max((Path(f).stat().st_size for e in ENTITIES for f in entity_files(drop, e)), default=0)
    counts = {}
    for entity in ENTITIES:
        files = entity_files(drop, entity)
        if not files:
            continue
        con.execute(
            f"CREATE OR REPLACE TABLE {entity} AS SELECT unnest(data, recursive := false) FROM ("
            f"  SELECT unnest(data) AS data FROM read_json(?, columns = {{'data': '{RECORD_TYPES[entity]}[]'}},"
            f"  format = 'unstructured', maximum_object_size = ?))",
            [files, max(largest + 1, 16 * 2**20)],
        )
        counts[entity] = con.execute(f"SELECT count(*) FROM {entity}").fetchone()[0]
    for table, (parent, column) in CHILD_TABLES.items():
        if parent in counts:
            con.execute(
                f"CREATE OR REPLACE TABLE {table} AS SELECT id AS parent_id, unnest({column}, recursive := true) "
                f"FROM {parent}"
            )
            counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("drop", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    counts = read_floor(args.drop)
    print(f"floor: {time.perf_counter() - start:.2f} s", counts, file=sys.stderr)


if __name__ == "__main__":
    main()
