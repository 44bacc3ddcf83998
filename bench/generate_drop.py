"""Generates an SS12000 v2.1 drop of any size with a realistic shape, for the benchmark.

Per school unit: about 400 students in classes of 25, each student in one class and six teaching groups,
one teacher per 12 students (each teaching several activities, one of them mentor of a class), three
non-teaching staff. About 5 % of persons carry one of the data problems behind the reason codes. Made-up
people only; no guardians (they are not roster users and would only inflate the file).

    python bench/generate_drop.py OUT_DATA_DIR --persons 200000
"""

from __future__ import annotations

import argparse
import random
import uuid
from pathlib import Path

from skolon_pipeline.testing import drops

DROP_DATE = "2025-12-14"
NIGHT = "2025-12-15"
STUDENTS_PER_SCHOOL = 400
CLASS_SIZE = 25
SUBJECTS = ("Svenska", "Matematik", "Engelska", "NO", "SO", "Idrott")
TEACHER_RATIO = 12
OTHER_STAFF = 3
PERSONS_PER_SCHOOL = STUDENTS_PER_SCHOOL + STUDENTS_PER_SCHOOL // TEACHER_RATIO + OTHER_STAFF
PAGE_SIZE = 10_000
LAYOUT = drops.Pages(PAGE_SIZE)  # page-00001.json, ...; pageToken "page-2", ...
DEFECT_SHARE = 0.05
META = {"created": "2025-01-01T00:00:00Z", "modified": "2025-06-01T00:00:00Z"}
GROUP_START, GROUP_END = "2025-08-17", "2026-06-11"

SOURCES_YAML = """\
timezone: Europe/Stockholm
rules:
  lookahead_days: 30
  term_starts: ["2025-08-17", "2026-01-11"]
sources:
  - id: bench
    format: ss12000
    path: registries/bench
"""

GIVEN = ("Alva", "Elsa", "Maja", "Ebba", "Wilma", "Liam", "Noah", "Hugo", "Elias", "Oscar", "Åsa", "Björn")
FAMILY = ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Öberg", "Lindqvist")


class _Ids:
    def __init__(self, seed: int):
        self._rng = random.Random(seed)

    def __call__(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def _person(pid: str, n: int, emails: list[dict], **extra) -> dict:
    return {
        "id": pid,
        "meta": META,
        "givenName": GIVEN[n % len(GIVEN)],
        "familyName": FAMILY[n % len(FAMILY)],
        "securityMarking": "Ingen",
        "emails": emails,
        **extra,
    }


def _defect(rng: random.Random, person: dict, school_id: str) -> None:
    """One of the common real-world problems, on about 5 % of persons."""
    kind = rng.randrange(8)
    if kind == 0:
        person["givenName"] = ""
    elif kind == 1:
        person["emails"] = [{"value": "hemma@exempel.se", "type": "Privat"}]
    elif kind == 2:
        person["emails"][0]["value"] = person["emails"][0]["value"].replace("@", "@@")
    elif kind == 3:
        person["personStatus"] = "Utvandrad"
    elif kind == 4 and person.get("enrolments"):
        person["enrolments"][0]["endDate"] = "2025-10-31"
    elif kind == 5 and person.get("enrolments"):
        person["enrolments"][0]["startDate"] = "2026-03-02"
    elif kind == 6 and person.get("enrolments"):
        person["enrolments"][0]["enroledAt"] = {"id": "00000000-0000-4000-8000-000000000000"}
    else:
        person["familyName"] = " "


def generate(data_dir: Path, persons: int, seed: int = 1) -> Path:
    rng = random.Random(seed)
    new_id = _Ids(seed)
    drop = data_dir / "registries" / "bench" / DROP_DATE
    drop.mkdir(parents=True, exist_ok=True)
    data_dir.joinpath("sources.yaml").write_text(SOURCES_YAML, encoding="utf-8")
    schools = max(1, round(persons / PERSONS_PER_SCHOOL))
    authority = new_id()
    organisations = [{"id": authority, "meta": META, "displayName": "Bench kommun", "organisationType": "Huvudman"}]
    duties, groups, activities, page = [], [], [], []
    # Persons are written as they are made, so the generator never holds them all. A page is cut once it holds
    # PAGE_SIZE records, looked at after each student: one may hold a few more (a school's staff come as a block).
    person_pages = drops.PageChain(drop / "persons", LAYOUT)
    n = 0

    for s in range(schools):
        school = new_id()
        organisations.append(
            {
                "id": school,
                "meta": META,
                "displayName": f"Skola {s}",
                "organisationType": "Skolenhet",
                "schoolUnitCode": f"{10000000 + s}",
                "parentOrganisation": {"id": authority},
            }
        )
        teachers = []
        for _t in range(STUDENTS_PER_SCHOOL // TEACHER_RATIO):
            pid, did = new_id(), new_id()
            page.append(_person(pid, n, [{"value": f"t{n}@bench.se", "type": "Skola personal"}]))
            teachers.append(
                {
                    "id": did,
                    "meta": META,
                    "person": {"id": pid},
                    "dutyAt": {"id": school},
                    "dutyRole": "Lärare",
                    "startDate": "2020-08-01",
                }
            )
            n += 1
        for _ in range(OTHER_STAFF):
            pid = new_id()
            page.append(_person(pid, n, [{"value": f"s{n}@bench.se", "type": "Skola personal"}]))
            duties.append(
                {
                    "id": new_id(),
                    "meta": META,
                    "person": {"id": pid},
                    "dutyAt": {"id": school},
                    "dutyRole": "Skoladministratör",
                    "startDate": "2019-08-01",
                }
            )
            n += 1
        t_next = 0
        for c in range(STUDENTS_PER_SCHOOL // CLASS_SIZE):
            members = []
            for _ in range(CLASS_SIZE):
                pid = new_id()
                person = _person(
                    pid,
                    n,
                    [{"value": f"e{n}@elev.bench.se", "type": "Skola elev"}],
                    enrolments=[{"enroledAt": {"id": school}, "schoolType": "GR", "startDate": GROUP_START}],
                )
                if rng.random() < DEFECT_SHARE:
                    _defect(rng, person, school)
                page.append(person)
                members.append({"person": {"id": pid}})
                n += 1
                if len(page) >= PAGE_SIZE:
                    person_pages.write_page(page)
                    page = []
            klass = new_id()
            groups.append(
                {
                    "id": klass,
                    "meta": META,
                    "displayName": f"{c}A",
                    "groupType": "Klass",
                    "organisation": {"id": school},
                    "startDate": GROUP_START,
                    "endDate": GROUP_END,
                    "groupMemberships": members,
                }
            )
            mentor = teachers[c % len(teachers)]
            mentor.setdefault("assignmentRole", []).append({"group": {"id": klass}, "assignmentRoleType": "Mentor"})
            for subject in SUBJECTS:
                gid = new_id()
                groups.append(
                    {
                        "id": gid,
                        "meta": META,
                        "displayName": f"{subject} {c}A",
                        "groupType": "Undervisning",
                        "organisation": {"id": school},
                        "startDate": GROUP_START,
                        "endDate": GROUP_END,
                        "groupMemberships": members,
                    }
                )
                teacher = teachers[t_next % len(teachers)]
                t_next += 1
                activities.append(
                    {
                        "id": new_id(),
                        "meta": META,
                        "displayName": f"{subject} {c}A",
                        "calendarEventsRequired": False,
                        "organisation": {"id": school},
                        "startDate": GROUP_START,
                        "endDate": GROUP_END,
                        "groups": [{"id": gid}],
                        "teachers": [{"duty": {"id": teacher["id"]}}],
                    }
                )
        duties.extend(teachers)
    if page:
        person_pages.write_page(page)
    person_pages.close()
    # As a registry's API hands them out: pages of PAGE_SIZE records, one file per page.
    drops.write_ss12000(
        drop,
        {"organisations": organisations, "duties": duties, "groups": groups, "activities": activities},
        {"duties": LAYOUT, "groups": LAYOUT, "activities": LAYOUT},
    )
    return drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--persons", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(generate(args.data_dir, args.persons, args.seed))


if __name__ == "__main__":
    main()
