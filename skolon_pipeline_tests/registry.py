"""A small scenario of SS12000 records for tests: every record it makes is valid and included unless a test
changes it, so each test states only the one fact it is about. The drop builder
(`skolon_pipeline.testing.drops`) writes them; a test that needs another file form (pages, a plain array, a
BOM) writes `entities()` with it."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from pathlib import Path
from typing import Any

import yaml

from skolon_pipeline.testing import drops

META = {"created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z"}
TERM_START = "2026-08-17"
TERM_END = "2027-06-11"


class Registry:
    def __init__(self, name: str = "test"):
        self._ids = itertools.count(1)
        self._ns = uuid.uuid5(uuid.NAMESPACE_URL, f"skolon-test-{name}")
        self.organisations: list[dict] = []
        self.persons: list[dict] = []
        self.duties: list[dict] = []
        self.groups: list[dict] = []
        self.activities: list[dict] = []
        self.authority = self.org("Testby kommun", "Huvudman")

    def new_id(self) -> str:
        return str(uuid.uuid5(self._ns, str(next(self._ids))))

    # ── organisations ──────────────────────────────────────────────────────────────────────────────────
    def org(self, name: str, org_type: str, parent: str | None = None, **extra: Any) -> str:
        rec = {"id": self.new_id(), "meta": META, "displayName": name, "organisationType": org_type, **extra}
        if parent:
            rec["parentOrganisation"] = {"id": parent}
        self.organisations.append(rec)
        return rec["id"]

    def school(self, name: str = "Testskolan", code: str = "12345678") -> str:
        return self.org(name, "Skolenhet", parent=self.authority, schoolUnitCode=code, schoolTypes=["GR"])

    # ── persons ────────────────────────────────────────────────────────────────────────────────────────
    def person(self, given: str = "Test", family: str = "Person", emails: list[dict] | None = None, **extra) -> dict:
        pid = self.new_id()
        rec = {"id": pid, "meta": META, "givenName": given, "familyName": family, **extra}
        rec["emails"] = emails if emails is not None else [{"value": f"p{pid[:8]}@skola.test", "type": "Skola elev"}]
        self.persons.append(rec)
        return rec

    def student(self, school: str, start: str = TERM_START, end: str | None = TERM_END, **extra) -> dict:
        enrolment = {"enroledAt": {"id": school}, "schoolType": "GR", "startDate": start}
        if end:
            enrolment["endDate"] = end
        return self.person(enrolments=[enrolment], **extra)

    def duty(
        self,
        person: dict,
        school: str,
        role: str = "Lärare",
        start: str = "2020-08-01",
        end: str | None = None,
        **extra,
    ) -> dict:
        rec = {
            "id": self.new_id(),
            "meta": META,
            "person": {"id": person["id"]},
            "dutyAt": {"id": school},
            "dutyRole": role,
            "startDate": start,
            **extra,
        }
        if end:
            rec["endDate"] = end
        self.duties.append(rec)
        return rec

    def staff(self, school: str, role: str = "Lärare", **duty_extra) -> tuple[dict, dict]:
        pid = self.new_id()
        person = self.person(emails=[{"value": f"s{pid[:8]}@skola.test", "type": "Skola personal"}])
        return person, self.duty(person, school, role, **duty_extra)

    # ── groups and activities ──────────────────────────────────────────────────────────────────────────
    def group(
        self,
        school: str,
        group_type: str = "Klass",
        members: list[dict] | None = None,
        start: str = TERM_START,
        end: str | None = TERM_END,
        name: str = "7A",
        **extra,
    ) -> dict:
        rec = {
            "id": self.new_id(),
            "meta": META,
            "displayName": name,
            "groupType": group_type,
            "organisation": {"id": school},
            "startDate": start,
            **extra,
        }
        if end:
            rec["endDate"] = end
        rec["groupMemberships"] = [m if "person" in m else {"person": {"id": m["id"]}} for m in (members or [])]
        self.groups.append(rec)
        return rec

    def activity(
        self,
        school: str,
        groups: list[dict],
        duties: list[dict],
        start: str = TERM_START,
        end: str | None = TERM_END,
        **extra,
    ) -> dict:
        rec = {
            "id": self.new_id(),
            "meta": META,
            "displayName": "Matematik",
            "calendarEventsRequired": False,
            "organisation": {"id": school},
            "startDate": start,
            "groups": [{"id": g["id"]} for g in groups],
            "teachers": [{"duty": {"id": d["id"]}} for d in duties],
            **extra,
        }
        if end:
            rec["endDate"] = end
        self.activities.append(rec)
        return rec

    def teach(self, school: str, group: dict, **staff_kw) -> tuple[dict, dict]:
        """A teacher with an active duty and an activity teaching `group`."""
        person, duty = self.staff(school, **staff_kw)
        self.activity(school, [group], [duty])
        return person, duty

    # ── writing ────────────────────────────────────────────────────────────────────────────────────────
    def entities(self) -> dict[str, list[dict]]:
        return {
            "organisations": self.organisations,
            "persons": self.persons,
            "duties": self.duties,
            "groups": self.groups,
            "activities": self.activities,
        }

    def write(
        self,
        data_dir: Path,
        drop_date: str = "2026-12-01",
        source_id: str = "testby",
        rules: dict | None = None,
        source_rules: dict | None = None,
        layout: dict[str, drops.OneFile | drops.Pages] | None = None,
    ) -> Path:
        """Writes sources.yaml and the drop (each entity one page object, unless `layout` names another form for
        it, see testing/drops.py); returns the drop folder."""
        drop = drops.write_ss12000(data_dir / "registries" / source_id / drop_date, self.entities(), layout)
        write_sources(
            data_dir,
            [
                {
                    "id": source_id,
                    "format": "ss12000",
                    "path": f"registries/{source_id}",
                    **({"rules": source_rules} if source_rules else {}),
                }
            ],
            rules,
        )
        return drop


def one_class_school(n_students: int = 10) -> tuple[Registry, str, dict, list[dict], dict]:
    """A registry of one school with one class of `n_students` and its teacher: (registry, school, class,
    students, teacher), for tests that publish several nights and change a few records between them."""
    reg = Registry()
    school = reg.school()
    students = [reg.student(school, given=f"Elev{i}") for i in range(n_students)]
    klass = reg.group(school, members=students)
    teacher, _ = reg.teach(school, klass)
    return reg, school, klass, students, teacher


def write_sources(data_dir: Path, sources: list[dict], rules: dict | None = None) -> None:
    config = {
        "timezone": "Europe/Stockholm",
        "rules": {"term_starts": ["2026-08-17", "2027-01-11"], **(rules or {})},
        "sources": sources,
    }
    (data_dir / "sources.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")


def night(d: str) -> dt.date:
    return dt.date.fromisoformat(d)


def run_cli(tmp_path: Path, command: str, as_of: dt.date, *extra: str, export_dir: str = "exports") -> int:
    """`skolon-pipeline COMMAND --as-of AS_OF` in this process, on the test's folders (data/, wh/warehouse.duckdb,
    `export_dir`/) with the in-process executor; returns the exit code."""
    from skolon_pipeline import cli  # here, not at the top: the fast tier imports this module without Dagster

    return cli.main(
        [
            command,
            "--as-of",
            as_of.isoformat(),
            "--data-dir",
            str(tmp_path / "data"),
            "--warehouse",
            str(tmp_path / "wh" / "warehouse.duckdb"),
            "--export-dir",
            str(tmp_path / export_dir),
            "--executor",
            "in_process",
            *extra,
        ]
    )
