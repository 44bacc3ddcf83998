"""A small scenario of OneRoster CSV rows for tests (bulk, 1.2 with roles.csv or 1.1 with users.orgSourcedIds):
every record it makes is valid and included unless a test changes it. The drop builder
(`skolon_pipeline.testing.drops`) writes the files."""

from __future__ import annotations

from pathlib import Path

from skolon_pipeline.testing import drops

# OneRoster end dates are exclusive: this term's last day is 2027-06-10.
TERM = ("2026-08-17", "2027-06-11")


class OneRosterDrop:
    def __init__(self, version: str = "1.2", prefix: str = ""):
        self.version = version
        self.prefix = prefix
        self.rows: dict[str, list[dict]] = {
            name: [] for name in ("orgs", "academicSessions", "classes", "users", "roles", "enrollments")
        }
        self._n = 0
        self.district = self.org("Testby kommun", "district")
        self.term = self.session("HT26-VT27", *TERM)

    def new_id(self, kind: str) -> str:
        self._n += 1
        return f"{self.prefix}{kind}-{self._n}"

    def org(self, name: str, type_: str, parent: str | None = None, **extra) -> str:
        sid = self.new_id("org")
        self.rows["orgs"].append(
            {"sourcedId": sid, "name": name, "type": type_, "parentSourcedId": parent or "", **extra}
        )
        return sid

    def school(self, name: str = "Testskolan", identifier: str = "12345678") -> str:
        return self.org(name, "school", parent=self.district, identifier=identifier)

    def session(self, title: str, start: str, end: str, type_: str = "term", **extra) -> str:
        sid = self.new_id("term")
        self.rows["academicSessions"].append(
            {
                "sourcedId": sid,
                "title": title,
                "type": type_,
                "startDate": start,
                "endDate": end,
                "schoolYear": start[:4],
                **extra,
            }
        )
        return sid

    def user(
        self,
        role: str,
        school: str,
        given: str = "Test",
        family: str = "Person",
        email: str | None = None,
        user_id: str | None = None,
        begin: str = "",
        end: str = "",
        **extra,
    ) -> str:
        sid = user_id or self.new_id("usr")
        email = f"{sid.lower().replace(':', '.')}@skola.test" if email is None else email
        row = {
            "sourcedId": sid,
            "enabledUser": "true",
            "username": sid,
            "givenName": given,
            "familyName": family,
            "email": email,
            **extra,
        }
        if self.version == "1.1":
            row.update({"orgSourcedIds": school, "role": role})
        else:
            self.rows["roles"].append(
                {
                    "sourcedId": self.new_id("role"),
                    "userSourcedId": sid,
                    "roleType": "primary",
                    "role": role,
                    "orgSourcedId": school,
                    "beginDate": begin,
                    "endDate": end,
                }
            )
        self.rows["users"].append(row)
        return sid

    def klass(
        self, school: str, class_type: str = "homeroom", title: str = "7A", terms: list[str] | None = None, **extra
    ) -> str:
        sid = self.new_id("cls")
        self.rows["classes"].append(
            {
                "sourcedId": sid,
                "title": title,
                "classType": class_type,
                "schoolSourcedId": school,
                "termSourcedIds": ",".join(terms or [self.term]),
                **extra,
            }
        )
        return sid

    def enrol(self, klass: str, user: str, role: str, school: str, begin: str = "", end: str = "", **extra) -> str:
        sid = self.new_id("enr")
        self.rows["enrollments"].append(
            {
                "sourcedId": sid,
                "classSourcedId": klass,
                "schoolSourcedId": school,
                "userSourcedId": user,
                "role": role,
                "beginDate": begin,
                "endDate": end,
                **extra,
            }
        )
        return sid

    def basic(self) -> dict[str, str]:
        """A school with a class, two students and their teacher: everything included."""
        school = self.school()
        klass = self.klass(school)
        teacher = self.user("teacher", school, "Tina", "Lärare")
        students = [self.user("student", school, "Sam", f"Elev{i}") for i in range(2)]
        self.enrol(klass, teacher, "teacher", school)
        for s in students:
            self.enrol(klass, s, "student", school)
        return {"school": school, "class": klass, "teacher": teacher, "student": students[0], "student2": students[1]}

    # ── writing ────────────────────────────────────────────────────────────────────────────────────────
    def files(self) -> dict[str, list[dict]]:
        files = {
            "orgs": self.rows["orgs"],
            "academicSessions": self.rows["academicSessions"],
            "classes": self.rows["classes"],
            "users": self.rows["users"],
            "enrollments": self.rows["enrollments"],
        }
        if self.version == "1.2":
            files["roles"] = self.rows["roles"]
        return files

    def manifest(self) -> list[list[str]]:
        return drops.oneroster_manifest(self.files(), self.version)

    def csv_texts(self, delimiter: str = ",", line_end: str = "\n") -> dict[str, str]:
        return drops.oneroster_texts(self.files(), self.version, delimiter, line_end)

    def write(
        self, drop: Path, delimiter: str = ",", line_end: str = "\n", encoding: str = "utf-8", as_zip: bool = False
    ) -> Path:
        """Writes the drop folder (or `<drop>.zip` when as_zip) and returns it."""
        return drops.write_oneroster(drop, self.files(), self.version, delimiter, line_end, encoding, as_zip)


def oneroster_source(source_id: str = "or", **extra) -> dict:
    return {"id": source_id, "format": "oneroster", "path": f"registries/{source_id}", **extra}
