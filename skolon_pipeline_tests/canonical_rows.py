"""The rules' own tests: canonical staging rows built in Python, validated and evaluated in DuckDB.

No drop is written and nothing is published. The canonical tables are created with the columns and types the
SS12000 reader gives them (read once per process from an extract of an empty drop, so that the schema is said
in one place, the reader); the rows then go through the night's own validate and rules stages (`night.validate`:
INVALID_RECORD; `night.evaluate`: the rules, conservation), and the result is read through the same `Night` as
the end-to-end tests (nightly.<table>, the rows the night would publish).

Every record the builder makes is valid and included unless a test changes it, so each test states only the
fact it is about. Values are the canonical ones (text dates, lower-case ids, the school e-mail addresses the
reader kept in person_emails, the others counted in persons.private_emails).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from skolon_pipeline import duck
from skolon_pipeline import night as stages
from skolon_pipeline.config import Installation, Rules, Source
from skolon_pipeline.rules.engine import STAGING_INPUTS
from skolon_pipeline.sources.civic import PseudonymKey
from skolon_pipeline.sources.ss12000 import ENTITIES, extract_ss12000
from skolon_pipeline_tests.conftest import Night, rules_night

TERM_START = "2026-08-17"
TERM_END = "2027-06-11"
TERM_STARTS = ("2026-08-17", "2027-01-11")  # as registry.write_sources writes them
SOURCE_ID = "testby"

# Tables whose rows are numbered within their parent (the detail of an INVALID_RECORD names the number).
_ORDINAL_PARENT = {
    "enrolments": "person_id",
    "person_emails": "person_id",
    "group_memberships": "group_id",
    "activity_teachers": "activity_id",
    "duty_assignment_roles": "duty_id",
}


@functools.cache
def staging_schema() -> dict[str, tuple[tuple[str, str], ...]]:
    """table → ((column, type), ...), as the SS12000 reader creates the staging tables (after
    `complete_staging`, so every optional column is there)."""
    with tempfile.TemporaryDirectory() as folder, duckdb.connect() as con:
        for entity in ENTITIES:
            (Path(folder) / f"{entity}.json").write_text("[]", encoding="utf-8")
        extract_ss12000(con, SOURCE_ID, Path(folder), key=PseudonymKey.from_secret("the canonical rows' schema key"))
        names = [t for t in (*STAGING_INPUTS, "reader_invalid_records") if t != "invalid_records"]
        return {
            table: tuple(
                con.execute(
                    """SELECT column_name, data_type FROM duckdb_columns()
                       WHERE schema_name = 'main' AND table_name = ? ORDER BY column_index""",
                    [table],
                ).fetchall()
            )
            for table in names
        }


class Canonical:
    """One source's canonical staging rows. Ids are readable (`person-3`), lower-case as the readers leave them."""

    def __init__(self, source_id: str = SOURCE_ID):
        self.source_id = source_id
        self._ids = itertools.count(1)
        self.rows: dict[str, list[dict[str, Any]]] = {table: [] for table in staging_schema()}
        self.authority = self.org("Testby kommun", "Huvudman")

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def add(self, table: str, **values: Any) -> dict[str, Any]:
        """A row of `table`; a column it does not have is an error (a typo would otherwise test nothing)."""
        columns = {c for c, _ in staging_schema()[table]}
        unknown = set(values) - columns
        assert not unknown, f"{table} has no column(s) {sorted(unknown)}"
        row = {"source_id": self.source_id, **values}
        if "duplicate_contents" in columns:
            row.setdefault("duplicate_contents", 1)
        if table in _ORDINAL_PARENT:
            parent = _ORDINAL_PARENT[table]
            row.setdefault("ordinal", 1 + sum(r[parent] == row[parent] for r in self.rows[table]))
        self.rows[table].append(row)
        return row

    # ── organisations ──────────────────────────────────────────────────────────────────────────────────
    def org(self, name: str, org_type: str, parent: str | None = None, **values: Any) -> str:
        org_id = self.new_id("org")
        self.add("organisations", org_id=org_id, name=name, org_type=org_type, parent_id=parent, **values)
        return org_id

    def school(self, name: str = "Testskolan", code: str = "12345678", parent: str | None = None) -> str:
        return self.org(name, "Skolenhet", parent=parent or self.authority, school_unit_code=code, school_types=["GR"])

    # ── persons ────────────────────────────────────────────────────────────────────────────────────────
    def person(
        self,
        given: str | None = "Test",
        family: str | None = "Person",
        emails: list[tuple[str, str]] | None = None,
        **values: Any,
    ) -> str:
        """`emails`: the (address, type) pairs the reader kept (school types, or on a school domain); the
        default is one `Skola elev` address. Addresses it only counted go in `private_emails=`."""
        person_id = self.new_id("person")
        values.setdefault("private_emails", 0)
        self.add("persons", person_id=person_id, given_name=given, family_name=family, **values)
        for address, kind in emails if emails is not None else [(f"{person_id}@skola.test", "Skola elev")]:
            self.add("person_emails", person_id=person_id, email=address, email_type=kind)
        return person_id

    def enrol(
        self, person: str, school: str, start: str | None = TERM_START, end: str | None = TERM_END, **values: Any
    ) -> dict[str, Any]:
        values.setdefault("school_type", "GR")
        values.setdefault("cancelled", None)
        return self.add("enrolments", person_id=person, school_id=school, start_date=start, end_date=end, **values)

    def student(
        self, school: str, start: str | None = TERM_START, end: str | None = TERM_END, **person_values: Any
    ) -> str:
        person = self.person(**person_values)
        self.enrol(person, school, start, end)
        return person

    def duty(
        self, person: str, school: str, role: str = "Lärare", start: str | None = "2020-08-01", end: str | None = None
    ) -> str:
        duty_id = self.new_id("duty")
        self.add(
            "duties",
            duty_id=duty_id,
            person_id=person,
            school_id=school,
            duty_role=role,
            start_date=start,
            end_date=end,
        )
        return duty_id

    def staff(self, school: str, role: str = "Lärare", **duty_values: Any) -> tuple[str, str]:
        """A person with one duty (a staff e-mail address); returns (person, duty)."""
        person = self.person(emails=[])
        self.add("person_emails", person_id=person, email=f"{person}@skola.test", email_type="Skola personal")
        return person, self.duty(person, school, role, **duty_values)

    def guardian_of(self, child: str, guardian: str, relation: str = "Vårdnadshavare") -> None:
        self.add("responsibles", person_id=child, responsible_id=guardian, relation_type=relation)

    # ── groups and teacher assignments ─────────────────────────────────────────────────────────────────
    def group(
        self,
        school: str,
        group_type: str = "Klass",
        members: list[str] | None = None,
        start: str | None = TERM_START,
        end: str | None = TERM_END,
        name: str = "7A",
        **values: Any,
    ) -> str:
        group_id = self.new_id("group")
        self.add(
            "groups",
            group_id=group_id,
            name=name,
            group_type=group_type,
            school_id=school,
            start_date=start,
            end_date=end,
            **values,
        )
        for person in members or []:
            self.member(group_id, person)
        return group_id

    def member(self, group: str, person: str, start: str | None = None, end: str | None = None) -> dict[str, Any]:
        """A student membership; no dates of its own (the group's apply) unless given."""
        return self.add("group_memberships", group_id=group, person_id=person, start_date=start, end_date=end)

    def assign(
        self,
        group: str,
        person: str | None,
        duty: str | None = None,
        start: str | None = None,
        end: str | None = None,
        origin: str = "activity",
    ) -> dict[str, Any]:
        """A teacher assignment as the reader derives it (from Activity.teachers or Duty.assignmentRole); person
        None: the duty it names is not in the drop."""
        return self.add(
            "teacher_assignments",
            group_id=group,
            person_id=person,
            duty_id=duty,
            origin=origin,
            origin_id=duty,
            start_date=start,
            end_date=end,
        )

    def teach(self, school: str, group: str, **staff_values: Any) -> tuple[str, str]:
        """A teacher with an active teaching duty, assigned to `group`; returns (person, duty)."""
        person, duty = self.staff(school, **staff_values)
        self.assign(group, person, duty)
        return person, duty

    # ── the night ──────────────────────────────────────────────────────────────────────────────────────
    def evaluate(
        self,
        staging_dir: Path,
        as_of: str = "2026-12-01",
        rules: dict[str, Any] | None = None,
        drop_date: str | None = None,
    ) -> Night:
        """The night's validate and rules stages over these rows, as `night.evaluate_night` runs them after an
        extract: the rows are written where the extract would have left them (`staging_dir`), with the rules of
        a sources.yaml that says term starts 2026-08-17 and 2027-01-11, then `rules`. The Night reads what the
        rules left."""
        night = dt.date.fromisoformat(as_of)
        source = Source(self.source_id, "ss12000", staging_dir, Rules(**{"term_starts": TERM_STARTS, **(rules or {})}))
        path = stages.staging_file(staging_dir, night, self.source_id)
        with duck.connect(path) as con:  # in the storage format the extract writes
            self._write(con)
            stages.record_read(con, self.source_id, dt.date.fromisoformat(drop_date or as_of))
        stages.validate(self.source_id, path)
        installation = Installation("Europe/Stockholm", source.rules, (source,), staging_dir)
        return rules_night(stages.evaluate(installation, night, staging_dir), night)

    def _write(self, con: duckdb.DuckDBPyConnection) -> None:
        for table, columns in staging_schema().items():
            names = [c for c, _ in columns]
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns)})")
            rows = self.rows[table]
            if rows:  # one scan of a data frame (executemany inserts row by row: 30 s for 2 100 students)
                frame = pd.DataFrame([[row.get(c) for c in names] for row in rows], columns=names, dtype=object)
                con.register("_rows", frame)
                casts = ", ".join(f"CAST({c} AS {t})" for c, t in columns)
                con.execute(f"INSERT INTO {table} SELECT {casts} FROM _rows")
                con.unregister("_rows")


def evaluate_cases(
    staging_dir: Path,
    cases: dict[str, Callable[[Canonical, str], str]],
    as_of: str = "2026-12-01",
    rules: dict[str, Any] | None = None,
) -> tuple[Night, dict[str, str], str]:
    """The cases of a table-driven test in one night: each `make(canonical, school)` adds its own records (at one
    school) and returns the id its test asserts on. Returns the Night, case → id, and the school."""
    canon = Canonical()
    school = canon.school()
    ids = {name: make(canon, school) for name, make in cases.items()}
    return canon.evaluate(staging_dir, as_of=as_of, rules=rules), ids, school
