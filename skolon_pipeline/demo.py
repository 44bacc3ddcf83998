"""A made-up municipality's SS12000 v2.1 registry drop, for the README, the tests and the benchmarks.

`generate_demo(data_dir)` writes `data_dir/sources.yaml` and one registry drop of the fictional municipality
Lindby (`registries/lindby/<drop date>/`): a school authority, three school units per `scale`, about 500
students with their guardians, about 50 staff, classes, teaching groups and their activities.

Everything is invented. Names are random combinations of common Swedish given and family names, civic
numbers are temporary numbers (`20120101TF01`: birth date, two letters, two digits) that never belong to a
real person, phone numbers come from the range the Swedish telecom regulator reserves for fiction, and
e-mail addresses are on `lindby.se` / `elev.lindby.se` or the made-up `exempel.se`.

The drop is meant to be read on the demo night `DEMO_NIGHT` (2025-12-15, in the school year 2025/26; the drop is
dated `DEMO_DROP_DATE`, 2025-12-14). Every date and year derives from `SCHOOL_YEAR`, so the scenario moves by
whole years with that one constant (and a regenerated `data/`). It holds deliberate defects so that
every reason code of CONTRACT §4 occurs on that night (except those in `NOT_IN_DEMO`): `DEFECTS` lists them
with the record ids involved, in the `record_id` form of `diagnostics.exclusions` (a person or group id, or
`<group_id>/<person_id>` for a membership). `QUIRKS` lists real-world deviations the reader must tolerate
without excluding anything. It also exercises every accepted file form: page objects, a folder of pages
(`persons/`), a plain array (`activities.json`) and a BOM (`groups.json`).

Output is byte-identical for the same arguments: ids are uuid5 of stable keys (so they are the same at every
scale and drop date, as a real registry's would be), the other values come from `random.Random` seeded per
school cycle, and lists keep generation order.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import json
import random
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from skolon_pipeline.sources.civic import DEMO_MARKER, DEMO_MARKER_TEXT
from skolon_pipeline.testing import drops

DEMO_SOURCE_ID = "lindby"

# The first calendar year of the demo's school year (2025 means 2025/26). Every date and year of the scenario
# derives from it, so moving the scenario by whole years is this one edit (and regenerating data/).
SCHOOL_YEAR = 2025

# The calendar the scenario was drawn in: weekdays (first and last school days) and the random birth and meta
# dates are computed in it and then moved by whole years to SCHOOL_YEAR, day and month unchanged. So moving
# SCHOOL_YEAR changes no name, no interval and no day/month; only the years. Never change this one.
_DRAWN_IN = 2026
_YEARS_MOVED = SCHOOL_YEAR - _DRAWN_IN


def _add_years(d: dt.date, years: int) -> dt.date:
    """d with its year changed by `years`; 29 February becomes 28 February in a common year."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


def _on(years_after: int, month: int, day: int) -> dt.date:
    """Day and month in the calendar year SCHOOL_YEAR + years_after."""
    return dt.date(SCHOOL_YEAR + years_after, month, day)


def _yy(year: int) -> str:
    return f"{year % 100:02d}"


def _term_start(year: int) -> dt.date:
    """The first school day of the school year starting in `year`: the Monday in 15-21 August of the calendar
    the scenario was drawn in, moved to `year` (see _DRAWN_IN)."""
    d = dt.date(year - _YEARS_MOVED, 8, 15)
    return _add_years(d + dt.timedelta(days=(0 - d.weekday()) % 7), _YEARS_MOVED)


def _term_end(year: int) -> dt.date:
    """The last school day of the school year ending in `year`: the Friday in 8-14 June of the calendar the
    scenario was drawn in, moved to `year` (see _DRAWN_IN)."""
    d = dt.date(year - _YEARS_MOVED, 6, 8)
    return _add_years(d + dt.timedelta(days=(4 - d.weekday()) % 7), _YEARS_MOVED)


DEMO_DROP_DATE = _on(0, 12, 14)
DEMO_NIGHT = _on(0, 12, 15)  # the night the README runs

PERSONS_PER_PAGE = 200

# Reason codes that cannot occur in this demo with the rules its sources.yaml sets.
NOT_IN_DEMO = {"NO_ACTIVE_GROUP": "needs rules.student_requires_group: true"}

# The school year SCHOOL_YEAR/SCHOOL_YEAR+1 (17 August to 11 June): groups run from the first to the last
# school day; the spring term starts on 11 January.
YEAR_START = _term_start(SCHOOL_YEAR)
SPRING_START = _on(1, 1, 11)
YEAR_END = _term_end(SCHOOL_YEAR + 1)

SOURCES_YAML = f"""\
# The demo installation, written by skolon_pipeline.demo.generate_demo. Everything in it is made up.
timezone: Europe/Stockholm
rules:
  lookahead_days: 30
  term_starts: ["{YEAR_START.isoformat()}", "{SPRING_START.isoformat()}"]
  school_email_domains: [lindby.se, elev.lindby.se]
sources:
  - id: lindby
    format: ss12000
    path: registries/lindby
"""

_SEED = "skolon-demo-lindby"
_NAMESPACE = uuid.UUID("6f1c2b1e-3d5a-5c47-9a0e-1d2c3b4a5f60")

STUDENT_DOMAIN = "elev.lindby.se"
STAFF_DOMAIN = "lindby.se"
PRIVATE_DOMAIN = "exempel.se"


# ─── Ids ─────────────────────────────────────────────────────────────────────────────────────────────────
def _uid(kind: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{key}"))


def _org(key: str) -> str:
    return _uid("organisation", key)


def _school(cycle: int, s: int) -> str:
    return _org(f"school:{cycle}:{s}")


def _student(s: int, k: int, seat: int, cycle: int = 0) -> str:
    return _uid("person", f"student:{cycle}:{s}:{k}:{seat}")


def _staff(s: int, n: int, cycle: int = 0) -> str:
    """Staff member n of school s: 0 is the Rektor, then the teachers."""
    return _uid("person", f"staff:{cycle}:{s}:{n}")


def _special_person(name: str) -> str:
    return _uid("person", f"special:{name}")


def _duty(person_id: str) -> str:
    return _uid("duty", person_id)


def _klass(s: int, k: int, cycle: int = 0) -> str:
    return _uid("group", f"klass:{cycle}:{s}:{k}")


def _core(s: int, k: int, i: int, cycle: int = 0) -> str:
    """Core subject group i (0 Svenska, 1 Matematik, 2 Engelska or the year's course) of class k."""
    return _uid("group", f"core:{cycle}:{s}:{k}:{i}")


def _language(s: int, year: int, i: int, cycle: int = 0) -> str:
    return _uid("group", f"language:{cycle}:{s}:{year}:{i}")


def _special_group(name: str) -> str:
    return _uid("group", f"special:{name}")


def _activity(group_id: str) -> str:
    return _uid("activity", group_id)


def _membership(group_id: str, person_id: str) -> str:
    return f"{group_id}/{person_id}"


def _mixed_case(an_id: str) -> str:
    """The same UUID with its first half in upper case, as some registries send references."""
    return an_id[:18].upper() + an_id[18:]


# ─── Deliberate defects and quirks (cycle 0 only) ────────────────────────────────────────────────────────
# Students are addressed by (school, class, seat); every class has at least 21 seats. School 0 is
# Lindbyskolan (classes 1A..6A), 1 Norrby skola (7A, 7B, 8A, 8B, 9A, 9B), 2 Lindby gymnasium (9 classes).
_SEATS = {
    "duplicate_id": (0, 1, 3),
    "exact_repeat": (0, 2, 4),
    "missing_given": (0, 3, 2),
    "inactive": (0, 4, 1),
    "mixed_member_ref": (0, 4, 6),
    "lookahead_student": (0, 5, 9),
    "membership_ended": (0, 5, 11),
    "missing_family": (1, 0, 4),
    "invalid_membership": (1, 0, 12),
    "privat_only": (1, 2, 6),
    "mixed_enroled_at": (1, 2, 2),
    "dup_email_a": (1, 3, 1),
    "dup_email_b": (1, 4, 2),
    "status_absent": (1, 4, 9),
    "placement_ended": (1, 5, 3),
    "placement_not_started": (2, 0, 15),
    "no_emails": (2, 1, 3),
    "membership_not_started": (2, 1, 10),
    "invalid_enrolment": (2, 2, 7),
    "unknown_school": (2, 3, 8),
    "invalid_email": (2, 4, 5),
    "cancelled": (2, 6, 2),
    "open_start": (2, 8, 3),
}
# Included students with a protected identity: their contact details must never reach the roster.
_PROTECTED = {
    (0, 0, 5): "Skyddad folkbokföring",
    (1, 1, 7): "Skyddad folkbokföring",
    (2, 5, 4): "Skyddad folkbokföring",
    (0, 3, 9): "Sekretessmarkering",
    (2, 7, 1): "Sekretessmarkering",
}
# Members of the special groups (school, class, seats).
_SPECIAL_MEMBERS = {
    "unknown_school": (0, 2, range(4)),
    "not_started": (2, 0, range(3)),
    "ended": (1, 4, range(10, 14)),
    "mentor_group": (1, 0, range(13, 19)),
    "schema_group": (0, 5, range(6)),
}


def _seat(name: str) -> str:
    return _student(*_SEATS[name])


def _members(name: str) -> list[str]:
    s, k, seats = _SPECIAL_MEMBERS[name]
    return [_student(s, k, seat) for seat in seats]


_MISSING_MEMBER = _special_person("missing_member")  # never written to persons
_MISSING_ORG = _org("missing:elevhalsan")  # never written to organisations
_PERSON_REF_TEACHER = _staff(0, 2)  # a Lärare at Lindbyskolan
_PERSON_REF_ACTIVITY = _activity(_core(0, 4, 1))  # Matematik 5A
_TEACHER_MISSING_ACTIVITY_GROUP = _staff(1, 2)
_TEACHER_MISSING_MENTOR_GROUP = _staff(2, 3)


# The defects' dates, relative to the demo night (SCHOOL_YEAR-12-15) and the school year.
_IMPOSSIBLE_START = f"{SCHOOL_YEAR}-02-30"  # no such day
_IMPOSSIBLE_END = f"{SCHOOL_YEAR}-13-01"  # no such month
_TEACHER_LOOKAHEAD_START = _on(1, 1, 5)  # within lookahead_days of the demo night
_ADMIN_START = _on(1, 2, 1)  # beyond it
_TEACHER_ENDED_START = _on(-7, 8, 19)
_TEACHER_ENDED_END = _on(0, 11, 30)
_PLACEMENT_START = _on(1, 3, 1)
_LOOKAHEAD_PLACEMENT_START = _on(1, 1, 8)
_PLACEMENT_END = _on(0, 10, 31)
_GROUP_START = _on(1, 1, 18)
_MEMBERSHIP_START = _on(1, 2, 15)
_MEMBERSHIP_END = _on(0, 11, 1)
_ENDED_GROUP_START = _term_start(SCHOOL_YEAR - 1)  # a group of the previous school year
_ENDED_GROUP_END = _term_end(SCHOOL_YEAR)
_KLASS_IM = f"IM{_yy(SCHOOL_YEAR)}"  # the class without a groupMemberships key


class Defect(NamedTuple):
    code: str  # a CONTRACT §4 reason code, or LOOKAHEAD_INCLUDED / EXACT_REPEAT for records that must pass
    description: str
    record_ids: tuple[str, ...]  # as diagnostics.exclusions.record_id (membership: <group_id>/<person_id>)


DEFECTS: list[Defect] = [
    Defect("MISSING_GIVEN_NAME", 'student with givenName ""', (_seat("missing_given"),)),
    Defect("MISSING_FAMILY_NAME", 'student with familyName "  "', (_seat("missing_family"),)),
    Defect("MISSING_EMAIL", "student whose only e-mail is a Privat address at exempel.se", (_seat("privat_only"),)),
    Defect("MISSING_EMAIL", "student without an emails key", (_seat("no_emails"),)),
    Defect("INVALID_EMAIL", "student whose Skola elev address is anna.berg@@elev.lindby.se", (_seat("invalid_email"),)),
    Defect(
        "DUPLICATE_EMAIL",
        "two students with the same Skola elev address, differing only in letter case",
        (_seat("dup_email_a"), _seat("dup_email_b")),
    ),
    Defect(
        "DUPLICATE_ID",
        "student whose record appears again in the last persons page with another givenName",
        (_seat("duplicate_id"),),
    ),
    Defect(
        "EXACT_REPEAT",
        "student whose record appears again, unchanged, in the last persons page: dropped quietly, still included",
        (_seat("exact_repeat"),),
    ),
    Defect(
        "INVALID_RECORD",
        f"student whose enrolment startDate is {_IMPOSSIBLE_START}",
        (_seat("invalid_enrolment"),),
    ),
    Defect(
        "INVALID_RECORD",
        f"group membership with endDate {_IMPOSSIBLE_END}",
        (_membership(_core(1, 0, 0), _seat("invalid_membership")),),
    ),
    Defect("PERSON_INACTIVE", "student with personStatus Utvandrad", (_seat("inactive"),)),
    Defect(
        "NO_SCHOOL_LINK",
        "person with a school e-mail but no enrolment and no duty, nobody's guardian",
        (_special_person("no_school_link"),),
    ),
    Defect(
        "LOOKAHEAD_INCLUDED",
        f"Lärare whose duty starts {_TEACHER_LOOKAHEAD_START}, activity teacher of Matematik 1A: "
        "included through look-ahead",
        (_special_person("teacher_lookahead"),),
    ),
    Defect(
        "EMPLOYMENT_NOT_STARTED",
        f"Skoladministratör whose duty starts {_ADMIN_START} (visible_from {_ADMIN_START})",
        (_special_person("admin_not_started"),),
    ),
    Defect(
        "EMPLOYMENT_ENDED",
        f"Lärare whose only duty ended {_TEACHER_ENDED_END}, still an activity teacher of Engelska 7B",
        (_special_person("teacher_ended"),),
    ),
    Defect(
        "NO_GROUP_ASSIGNMENT",
        "Lärare with an active duty who teaches no activity and mentors no group",
        (_special_person("teacher_no_group"),),
    ),
    Defect(
        "PLACEMENT_NOT_STARTED",
        f"student whose only enrolment starts {_PLACEMENT_START} (visible_from {_PLACEMENT_START})",
        (_seat("placement_not_started"),),
    ),
    Defect(
        "LOOKAHEAD_INCLUDED",
        f"student whose enrolment starts {_LOOKAHEAD_PLACEMENT_START}: included through look-ahead",
        (_seat("lookahead_student"),),
    ),
    Defect("PLACEMENT_ENDED", f"student whose enrolment ended {_PLACEMENT_END}", (_seat("placement_ended"),)),
    Defect("PLACEMENT_CANCELLED", "student whose only enrolment is cancelled", (_seat("cancelled"),)),
    Defect(
        "UNKNOWN_SCHOOL",
        "student enrolled at Lindby skolområde (a Skola, not a Skolenhet)",
        (_seat("unknown_school"),),
    ),
    Defect(
        "UNKNOWN_SCHOOL",
        "Skolsköterska whose duty is at an organisation that is not in the drop",
        (_special_person("staff_unknown_school"),),
    ),
    Defect(
        "GROUP_UNKNOWN_SCHOOL",
        "Undervisning group whose organisation is Lindby skolområde (a Skola)",
        (_special_group("unknown_school"),),
    ),
    Defect(
        "GROUP_NOT_STARTED",
        f"Undervisning group starting {_GROUP_START} (visible_from {_GROUP_START})",
        (_special_group("not_started"),),
    ),
    Defect("GROUP_ENDED", f"Undervisning group that ended {_ENDED_GROUP_END}", (_special_group("ended"),)),
    Defect(
        "GROUP_TYPE_NOT_SYNCED",
        "a Mentor group and a Schema group, with members",
        (_special_group("mentor_group"), _special_group("schema_group")),
    ),
    Defect(
        "MEMBERSHIP_NOT_STARTED",
        f"group membership with startDate {_MEMBERSHIP_START}",
        (_membership(_core(2, 1, 1), _seat("membership_not_started")),),
    ),
    Defect(
        "MEMBERSHIP_ENDED",
        f"group membership with endDate {_MEMBERSHIP_END}",
        (_membership(_core(0, 5, 2), _seat("membership_ended")),),
    ),
    Defect(
        "MEMBER_EXCLUDED",
        "class membership of the student with personStatus Utvandrad",
        (_membership(_klass(0, 4), _seat("inactive")),),
    ),
    Defect(
        "GROUP_EXCLUDED",
        f"membership in the group that ended {_ENDED_GROUP_END}",
        (_membership(_special_group("ended"), _members("ended")[0]),),
    ),
    Defect(
        "UNKNOWN_PERSON",
        "group membership (Svenska 1A) naming a person id that is not in persons",
        (_membership(_core(0, 0, 0), _MISSING_MEMBER),),
    ),
    Defect(
        "UNKNOWN_GROUP",
        "activity (Modersmål arabiska) whose only group is not in groups.json",
        (_membership(_special_group("missing_activity_group"), _TEACHER_MISSING_ACTIVITY_GROUP),),
    ),
    Defect(
        "UNKNOWN_GROUP",
        "Duty.assignmentRole (Mentor) naming a group that is not in groups.json",
        (_membership(_special_group("missing_mentor_group"), _TEACHER_MISSING_MENTOR_GROUP),),
    ),
]

# Deviations the reader tolerates (the record stays; some give a diagnostics.warnings row: the code named).
QUIRKS: list[Defect] = [
    Defect(
        "TEACHER_BY_PERSON",
        "activity Matematik 5A names its teacher as {person: {id}} instead of {duty: {id}}",
        (_PERSON_REF_ACTIVITY,),
    ),
    Defect("ENUM_CASE", "group Tyska åk 8 has groupType UNDERVISNING", (_language(1, 8, 1),)),
    Defect(
        "NO_MEMBERSHIPS_KEY",
        f"Klass {_KLASS_IM} has a mentor but no groupMemberships key",
        (_special_group("klass_im"),),
    ),
    Defect("MIXED_CASE_ID", "an enrolment's enroledAt.id in mixed case", (_seat("mixed_enroled_at"),)),
    Defect(
        "MIXED_CASE_ID",
        "a groupMemberships[].person.id in mixed case",
        (_membership(_klass(0, 4), _seat("mixed_member_ref")),),
    ),
    Defect("OPEN_START", "an enrolment without startDate", (_seat("open_start"),)),
    Defect("STATUS_ABSENT", "a student without personStatus", (_seat("status_absent"),)),
]

PROTECTED_PERSON_IDS: tuple[str, ...] = tuple(_student(*seat) for seat in _PROTECTED)


# ─── Made-up names and contact details ───────────────────────────────────────────────────────────────────
_GIVEN_FEMALE = (
    "Agnes",
    "Alice",
    "Alma",
    "Anna",
    "Astrid",
    "Britt",
    "Ebba",
    "Elin",
    "Ella",
    "Ellen",
    "Elsa",
    "Emma",
    "Eva",
    "Freja",
    "Hanna",
    "Ida",
    "Ingrid",
    "Karin",
    "Klara",
    "Lena",
    "Linnea",
    "Maja",
    "Maria",
    "Märta",
    "Olivia",
    "Saga",
    "Sara",
    "Selma",
    "Signe",
    "Sofia",
    "Stina",
    "Vera",
    "Wilma",
    "Ylva",
    "Åsa",
)
_GIVEN_MALE = (
    "Adam",
    "Alexander",
    "Anders",
    "Anton",
    "Axel",
    "Björn",
    "Elias",
    "Erik",
    "Göran",
    "Hugo",
    "Håkan",
    "Isak",
    "Johan",
    "Jonas",
    "Jörgen",
    "Karl",
    "Lars",
    "Leo",
    "Liam",
    "Lucas",
    "Ludvig",
    "Mikael",
    "Måns",
    "Nils",
    "Noah",
    "Olle",
    "Oliver",
    "Oscar",
    "Per",
    "Pär",
    "Sören",
    "Viktor",
    "William",
    "Åke",
)
_FAMILY = (
    "Andersson",
    "Axelsson",
    "Bengtsson",
    "Berg",
    "Berglund",
    "Bergström",
    "Björk",
    "Danielsson",
    "Ek",
    "Engström",
    "Eriksson",
    "Forsberg",
    "Fredriksson",
    "Gustafsson",
    "Hansson",
    "Hedlund",
    "Henriksson",
    "Holm",
    "Håkansson",
    "Jakobsson",
    "Jansson",
    "Johansson",
    "Jonsson",
    "Jönsson",
    "Karlsson",
    "Larsson",
    "Lind",
    "Lindberg",
    "Lindgren",
    "Lindqvist",
    "Lindström",
    "Lund",
    "Lundberg",
    "Lundgren",
    "Lundin",
    "Magnusson",
    "Mattsson",
    "Nilsson",
    "Nyström",
    "Olofsson",
    "Olsson",
    "Persson",
    "Pettersson",
    "Sandberg",
    "Sjöberg",
    "Sjögren",
    "Ström",
    "Sundberg",
    "Svensson",
    "Söderberg",
    "Wallin",
    "Åberg",
    "Åström",
    "Öberg",
)
_STREETS = (
    "Storgatan",
    "Skolgatan",
    "Kyrkvägen",
    "Björkvägen",
    "Ängsvägen",
    "Åvägen",
    "Tallstigen",
    "Östra Ringvägen",
    "Sjövägen",
    "Lärkgatan",
    "Granvägen",
    "Kvarngatan",
    "Mossvägen",
    "Hagtornsvägen",
)
_LOCALITIES = ("Lindby", "Norrby", "Lindby strand")
_ASCII = str.maketrans({"å": "a", "ä": "a", "ö": "o", "é": "e", "ü": "u"})


def _local_part(given: str, family: str) -> str:
    def clean(name: str) -> str:
        return "".join(ch for ch in name.lower().translate(_ASCII) if ch.isascii() and (ch.isalnum() or ch == "-"))

    return f"{clean(given)}.{clean(family)}"


# ─── School plans ────────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class _Plan:
    school_type: str  # GR | GY
    years: tuple[int, ...]  # the school years taught, first and last are the stage's
    classes_per_year: int
    teachers: int  # Lärare; one Förstelärare and the Rektor come on top
    core_subjects: dict[int, tuple[str, str, str]]  # per school year


_GR_CORE = ("Svenska", "Matematik", "Engelska")
_PLANS = (
    _Plan("GR", (1, 2, 3, 4, 5, 6), 1, 11, dict.fromkeys(range(1, 7), _GR_CORE)),
    _Plan("GR", (7, 8, 9), 2, 11, dict.fromkeys(range(7, 10), _GR_CORE)),
    _Plan(
        "GY",
        (1, 2, 3),
        3,
        13,
        {
            1: ("Svenska 1", "Matematik 1c", "Engelska 5"),
            2: ("Svenska 2", "Matematik 2c", "Engelska 6"),
            3: ("Svenska 3", "Matematik 3c", "Samhällskunskap 1b"),
        },
    ),
)
_SCHOOL_NAMES = (
    ("Lindbyskolan", "Norrby skola", "Lindby gymnasium"),
    ("Åsbyskolan", "Ekeby skola", "Åsby gymnasium"),
    ("Sjöviksskolan", "Björkå skola", "Sjöviks gymnasium"),
    ("Östanåskolan", "Västerby skola", "Östanå gymnasium"),
)
_GY_PROGRAMMES = ("NA", "SA", "EK")
_LANGUAGES = ("Spanska", "Tyska", "Franska")


def _school_name(cycle: int, s: int) -> str:
    if cycle < len(_SCHOOL_NAMES):
        return _SCHOOL_NAMES[cycle][s]
    return f"{_SCHOOL_NAMES[cycle % len(_SCHOOL_NAMES)][s]} {cycle + 1}"


def _class_name(plan: _Plan, year: int, n: int) -> str:
    if plan.school_type == "GY":
        return f"{_GY_PROGRAMMES[n % len(_GY_PROGRAMMES)]}{_yy(SCHOOL_YEAR + 1 - year)}"
    return f"{year}{'ABCDEFGH'[n]}"


def _birth_year(plan: _Plan, year: int) -> int:
    return SCHOOL_YEAR - 6 - year if plan.school_type == "GR" else SCHOOL_YEAR - 15 - year


# ─── The generator ───────────────────────────────────────────────────────────────────────────────────────
@dataclass
class _Family:
    family_name: str
    guardians: list[str]
    address: dict


@dataclass
class _Cycle:
    """One copy of the three-school shape; scale=N makes N of them."""

    students: list[dict] = field(default_factory=list)
    staff: list[dict] = field(default_factory=list)
    guardians: list[dict] = field(default_factory=list)
    duties: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    activities: list[dict] = field(default_factory=list)


class _Builder:
    def __init__(self, drop_date: dt.date, scale: int):
        self.drop_date = drop_date
        self.scale = scale
        self.civic_numbers: set[str] = set()
        self.email_counts: dict[str, int] = {}
        self.staff_emails: set[str] = set()
        self.private_counts: dict[str, int] = {}
        self.guardian_count = 0
        self.rng = random.Random(_SEED)

    # ── small helpers ──
    def meta(self, earliest: dt.date) -> dict:
        """Created and modified between `earliest` and the day before the drop (drawn in _DRAWN_IN's calendar)."""
        latest = _add_years(self.drop_date - dt.timedelta(days=1), -_YEARS_MOVED)
        earliest = min(_add_years(earliest, -_YEARS_MOVED), latest)
        span = (latest - earliest).days
        created = earliest + dt.timedelta(days=self.rng.randint(0, span))
        modified = created + dt.timedelta(days=self.rng.randint(0, (latest - created).days))
        created, modified = (
            min(_add_years(d, _YEARS_MOVED), self.drop_date - dt.timedelta(days=1)) for d in (created, modified)
        )

        def stamp(d: dt.date) -> str:
            hour, minute, second = self.rng.randint(1, 22), self.rng.randint(0, 59), self.rng.randint(0, 59)
            return f"{d.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}Z"

        return {"created": stamp(created), "modified": stamp(modified)}

    def name(self) -> tuple[str, str, str]:
        sex = self.rng.choice(("Kvinna", "Man"))
        given = self.rng.choice(_GIVEN_FEMALE if sex == "Kvinna" else _GIVEN_MALE)
        return given, self.rng.choice(_FAMILY), sex

    def civic_no(self, birth_year_from: int, birth_year_to: int) -> tuple[str, str]:
        """A temporary civic number and birth date in the given years (drawn in _DRAWN_IN's calendar)."""
        first = dt.date(birth_year_from - _YEARS_MOVED, 1, 1)
        last = dt.date(birth_year_to - _YEARS_MOVED, 12, 31)
        while True:
            born = _add_years(first + dt.timedelta(days=self.rng.randint(0, (last - first).days)), _YEARS_MOVED)
            number = f"{born:%Y%m%d}TF{self.rng.randint(1, 99):02d}"
            if number not in self.civic_numbers:
                self.civic_numbers.add(number)
                return number, born.isoformat()

    def address(self) -> dict:
        return {
            "type": "Folkbokföring",
            "streetAddress": f"{self.rng.choice(_STREETS)} {self.rng.randint(1, 60)}",
            "postalCode": f"{self.rng.randint(100, 999)} {self.rng.randint(10, 99)}",
            "locality": self.rng.choice(_LOCALITIES),
            "country": "Sverige",
        }

    def phone(self) -> dict:
        # 070-174 06 05 ... 070-174 06 99 are reserved for fiction by the Swedish telecom regulator (PTS).
        return {"value": f"070-17406{self.rng.randint(5, 99):02d}", "type": "Hem", "mobile": True}

    def private_email(self, given: str, family: str) -> dict:
        local = _local_part(given, family)
        n = self.private_counts[local] = self.private_counts.get(local, 0) + 1
        return {"value": f"{local}{n}@{PRIVATE_DOMAIN}", "type": "Privat"}

    def student_email(self, given: str, family: str) -> dict:
        local = _local_part(given, family)
        n = self.email_counts[local] = self.email_counts.get(local, 0) + 1
        return {"value": f"{local}{n}@{STUDENT_DOMAIN}", "type": "Skola elev"}

    def staff_name(self) -> tuple[str, str, str, str]:
        """A name whose <first>.<last>@lindby.se is not taken yet."""
        while True:
            given, family, sex = self.name()
            address = f"{_local_part(given, family)}@{STAFF_DOMAIN}"
            if address not in self.staff_emails:
                self.staff_emails.add(address)
                return given, family, sex, address

    def person(
        self,
        pid: str,
        given: str,
        family: str,
        sex: str,
        civic: tuple[str, str],
        earliest: dt.date,
        emails: list[dict],
        address: dict,
    ) -> dict:
        return {
            "id": pid,
            "meta": self.meta(earliest),
            "givenName": given,
            "familyName": family,
            "civicNo": {"value": civic[0], "nationality": "SE"},
            "birthDate": civic[1],
            "sex": sex,
            "securityMarking": "Ingen",
            "personStatus": "Aktiv",
            "emails": emails,
            "phoneNumbers": [self.phone()],
            "addresses": [address],
        }

    def staff_member(
        self, out: _Cycle, pid: str, role: str, school_id: str, start: dt.date, end: dt.date | None = None
    ) -> dict:
        given, family, sex, address = self.staff_name()
        emails = [{"value": address, "type": "Skola personal"}]
        if self.rng.random() < 0.5:
            emails.append(self.private_email(given, family))
        person = self.person(
            pid,
            given,
            family,
            sex,
            self.civic_no(SCHOOL_YEAR - 64, SCHOOL_YEAR - 28),
            start - dt.timedelta(days=30),
            emails,
            self.address(),
        )
        out.staff.append(person)
        duty = {
            "id": _duty(pid),
            "meta": self.meta(start - dt.timedelta(days=30)),
            "person": {"id": pid},
            "dutyAt": {"id": school_id},
            "dutyRole": role,
            "signature": (_local_part(given, family)[:2] + _local_part(family, given)[:2]).upper(),
            "dutyPercent": self.rng.choice((50, 75, 80, 100, 100, 100)),
            "startDate": start.isoformat(),
        }
        if end is not None:
            duty["endDate"] = end.isoformat()
        out.duties.append(duty)
        return duty

    def group(
        self,
        out: _Cycle,
        gid: str,
        name: str,
        group_type: str,
        school_type: str,
        org_id: str,
        members: list[str],
        start: dt.date = YEAR_START,
        end: dt.date = YEAR_END,
    ) -> dict:
        group = {
            "id": gid,
            "meta": self.meta(start - dt.timedelta(days=75)),
            "displayName": name,
            "groupType": group_type,
            "schoolType": school_type,
            "startDate": start.isoformat(),
            "endDate": end.isoformat(),
            "organisation": {"id": org_id},
            "groupMemberships": [{"person": {"id": pid}} for pid in members],
        }
        out.groups.append(group)
        return group

    def activity(self, out: _Cycle, group: dict, teacher_duties: list[str], org_id: str | None = None) -> dict:
        activity = {
            "id": _activity(group["id"]),
            "meta": self.meta(dt.date.fromisoformat(group["startDate"]) - dt.timedelta(days=60)),
            "displayName": group["displayName"],
            "activityType": "Undervisning",
            "calendarEventsRequired": True,
            "startDate": group["startDate"],
            "endDate": group["endDate"],
            "organisation": {"id": org_id or group["organisation"]["id"]},
            "groups": [{"id": group["id"]}],
            "teachers": [{"duty": {"id": d}, "grader": n == 0} for n, d in enumerate(teacher_duties)],
            "minutesPlanned": self.rng.choice((1800, 2400, 3000, 3600, 4800)),
        }
        out.activities.append(activity)
        return activity

    # ── the organisation tree ──
    def organisations(self) -> list[dict]:
        huvudman, forvaltning, skola = _org("huvudman"), _org("forvaltning"), _org("skolomrade")
        orgs = [
            {
                "id": huvudman,
                "meta": self.meta(_on(-7, 1, 1)),
                "displayName": "Lindby kommun",
                "organisationType": "Huvudman",
                "organisationNumber": "212000-9990",
                "municipalityCode": "9990",
            },
            {
                "id": forvaltning,
                "meta": self.meta(_on(-7, 1, 1)),
                "displayName": "Barn- och utbildningsförvaltningen",
                "organisationType": "Förvaltning",
                "parentOrganisation": {"id": huvudman},
            },
            # A Skola is an organisational level above school units, not a school itself (CONTRACT §3).
            {
                "id": skola,
                "meta": self.meta(_on(-7, 1, 1)),
                "displayName": "Lindby skolområde",
                "organisationType": "Skola",
                "parentOrganisation": {"id": forvaltning},
            },
        ]
        for cycle in range(self.scale):
            for s, plan in enumerate(_PLANS):
                orgs.append(
                    {
                        "id": _school(cycle, s),
                        "meta": self.meta(_on(-7, 1, 1)),
                        "displayName": _school_name(cycle, s),
                        "organisationType": "Skolenhet",
                        "schoolUnitCode": f"{self.rng.randint(10_000_000, 99_999_999)}",
                        "schoolTypes": [plan.school_type],
                        "municipalityCode": "9990",
                        "parentOrganisation": {"id": forvaltning},
                    }
                )
        return orgs

    # ── one cycle of three schools ──
    def cycle(self, cycle: int) -> _Cycle:
        self.rng = random.Random(f"{_SEED}:{cycle}")
        out = _Cycle()
        families: list[_Family] = []
        for s, plan in enumerate(_PLANS):
            school_id = _school(cycle, s)
            pool = self.school_staff(out, cycle, s, plan, school_id)
            teaching: list[dict] = []  # groups that get an activity
            klasses: list[dict] = []
            k = 0
            for year in plan.years:
                year_students: list[str] = []
                for n in range(plan.classes_per_year):
                    cname = _class_name(plan, year, n)
                    seats = [_student(s, k, seat, cycle) for seat in range(self.rng.randint(21, 27))]
                    for pid in seats:
                        self.student(out, families, pid, plan, year, school_id)
                    year_students += seats
                    klasses.append(
                        self.group(out, _klass(s, k, cycle), cname, "Klass", plan.school_type, school_id, seats)
                    )
                    for i, subject in enumerate(plan.core_subjects[year]):
                        teaching.append(
                            self.group(
                                out,
                                _core(s, k, i, cycle),
                                f"{subject} {cname}",
                                "Undervisning",
                                plan.school_type,
                                school_id,
                                seats,
                            )
                        )
                    if plan.school_type == "GR" and year >= 3:
                        # Slöjd in half classes: each student in one of the two.
                        half = self.rng.sample(seats, len(seats) // 2)
                        rest = [p for p in seats if p not in half]
                        for i, (craft, members) in enumerate((("trä", half), ("textil", rest))):
                            teaching.append(
                                self.group(
                                    out,
                                    _uid("group", f"slojd:{cycle}:{s}:{k}:{i}"),
                                    f"Slöjd {craft} {cname}",
                                    "Undervisning",
                                    plan.school_type,
                                    school_id,
                                    sorted(members),
                                )
                            )
                    k += 1
                label = f"åk {year}" if plan.school_type == "GR" else f"GY{year}"
                if plan.school_type == "GY" or year >= 6:
                    # Moderna språk: most students choose one of three languages.
                    chosen: dict[int, list[str]] = {i: [] for i in range(len(_LANGUAGES))}
                    for pid in year_students:
                        if self.rng.random() < 0.8:
                            chosen[self.rng.randrange(len(_LANGUAGES))].append(pid)
                    for i, language in enumerate(_LANGUAGES):
                        teaching.append(
                            self.group(
                                out,
                                _language(s, year, i, cycle),
                                f"{language} {label}",
                                "Undervisning",
                                plan.school_type,
                                school_id,
                                chosen[i],
                            )
                        )
                support = [pid for pid in year_students if self.rng.random() < 0.15]
                teaching.append(
                    self.group(
                        out,
                        _uid("group", f"support:{cycle}:{s}:{year}"),
                        f"Studiestöd {label}",
                        "Undervisning",
                        plan.school_type,
                        school_id,
                        support,
                    )
                )
            # Teachers: round-robin over the school's teaching staff, so everyone teaches something; about a
            # quarter of the groups get a second teacher.
            duties = [d for d in out.duties if d["id"] in pool]
            for n, group in enumerate(teaching):
                first = duties[n % len(duties)]["id"]
                chosen_duties = [first]
                if self.rng.random() < 0.25:
                    chosen_duties.append(self.rng.choice([d["id"] for d in duties if d["id"] != first]))
                self.activity(out, group, chosen_duties)
            # Mentors: one teacher per class, through Duty.assignmentRole.
            for n, klass in enumerate(klasses):
                duty = duties[(n * 5 + 1) % len(duties)]
                duty.setdefault("assignmentRole", []).append(
                    {"group": {"id": klass["id"]}, "assignmentRoleType": "Mentor"}
                )
        # Staff outside the schools' teaching pools.
        self.staff_member(
            out,
            _uid("person", f"staff:{cycle}:admin"),
            "Skoladministratör",
            _school(cycle, 0),
            _term_start(self.rng.randint(SCHOOL_YEAR - 14, SCHOOL_YEAR - 2)),
        )
        self.staff_member(
            out,
            _uid("person", f"staff:{cycle}:kurator"),
            "Kurator",
            _school(cycle, 1),
            _term_start(self.rng.randint(SCHOOL_YEAR - 14, SCHOOL_YEAR - 2)),
        )
        return out

    def school_staff(self, out: _Cycle, cycle: int, s: int, plan: _Plan, school_id: str) -> list[str]:
        """The Rektor and the teachers; returns the teaching staff's duty ids."""
        self.staff_member(
            out,
            _staff(s, 0, cycle),
            "Rektor",
            school_id,
            _term_start(self.rng.randint(SCHOOL_YEAR - 12, SCHOOL_YEAR - 3)),
        )
        pool = []
        for n in range(1, plan.teachers + 2):
            role = "Förstelärare" if n == plan.teachers + 1 else "Lärare"
            duty = self.staff_member(
                out, _staff(s, n, cycle), role, school_id, _term_start(self.rng.randint(SCHOOL_YEAR - 18, SCHOOL_YEAR))
            )
            pool.append(duty["id"])
        return pool

    def student(self, out: _Cycle, families: list[_Family], pid: str, plan: _Plan, year: int, school_id: str) -> None:
        given, family_name, sex = self.name()
        if families and self.rng.random() < 0.12:
            family = self.rng.choice(families)  # a sibling: same family name, guardians and address
        else:
            family = self.family(out, family_name)
            families.append(family)
        emails = [self.student_email(given, family.family_name)]
        if self.rng.random() < 0.3:
            emails.append(self.private_email(given, family.family_name))
        born = _birth_year(plan, year)
        start = _term_start(SCHOOL_YEAR - (year - plan.years[0]))
        person = self.person(
            pid,
            given,
            family.family_name,
            sex,
            self.civic_no(born, born),
            start - dt.timedelta(days=90),
            emails,
            dict(family.address),
        )
        person["enrolments"] = [
            {
                "enroledAt": {"id": school_id},
                "schoolType": plan.school_type,
                "schoolYear": year,
                "startDate": start.isoformat(),
                "endDate": _term_end(SCHOOL_YEAR + 1 + plan.years[-1] - year).isoformat(),
            }
        ]
        person["responsibles"] = [{"person": {"id": g}, "relationType": "Vårdnadshavare"} for g in family.guardians]
        out.students.append(person)

    def family(self, out: _Cycle, family_name: str) -> _Family:
        address = self.address()
        guardians = []
        for g in range(1 if self.rng.random() < 0.2 else 2):
            given, other_family, sex = self.name()
            surname = family_name if g == 0 or self.rng.random() < 0.6 else other_family
            self.guardian_count += 1
            gid = _uid("person", f"guardian:{self.guardian_count}")
            out.guardians.append(
                self.person(
                    gid,
                    given,
                    surname,
                    sex,
                    self.civic_no(SCHOOL_YEAR - 61, SCHOOL_YEAR - 31),
                    _on(-7, 1, 1),
                    [self.private_email(given, surname)],
                    dict(address),
                )
            )
            guardians.append(gid)
        return _Family(family_name, guardians, address)

    # ── the deliberate defects, applied to cycle 0 ──
    def defects(self, out: _Cycle) -> None:
        persons = {p["id"]: p for p in out.students}
        groups = {g["id"]: g for g in out.groups}
        activities = {a["id"]: a for a in out.activities}
        duties = {d["id"]: d for d in out.duties}

        def student(name: str) -> dict:
            return persons[_seat(name)]

        def membership(group_id: str, person_id: str) -> dict:
            return next(m for m in groups[group_id]["groupMemberships"] if m["person"]["id"] == person_id)

        for seat, marking in _PROTECTED.items():
            persons[_student(*seat)]["securityMarking"] = marking

        student("missing_given")["givenName"] = ""
        student("missing_family")["familyName"] = "  "
        p = student("privat_only")
        p["emails"] = [self.private_email(p["givenName"], p["familyName"])]
        del student("no_emails")["emails"]
        p = student("invalid_email")
        p["givenName"], p["familyName"], p["sex"] = "Anna", "Berg", "Kvinna"
        p["emails"] = [{"value": "anna.berg@@elev.lindby.se", "type": "Skola elev"}]
        # Two students of the same name given one address (the generated ones always carry a number).
        for name, address in (
            ("dup_email_a", "elias.lund@elev.lindby.se"),
            ("dup_email_b", "Elias.Lund@elev.lindby.se"),
        ):
            p = student(name)
            p["givenName"], p["familyName"], p["sex"] = "Elias", "Lund", "Man"
            p["emails"] = [{"value": address, "type": "Skola elev"}]
        student("invalid_enrolment")["enrolments"][0]["startDate"] = _IMPOSSIBLE_START
        membership(_core(1, 0, 0), _seat("invalid_membership"))["endDate"] = _IMPOSSIBLE_END
        student("inactive")["personStatus"] = "Utvandrad"

        p = student("placement_not_started")
        p["enrolments"][0]["startDate"] = _PLACEMENT_START.isoformat()
        membership(_klass(2, 0), p["id"])["startDate"] = _PLACEMENT_START.isoformat()
        p = student("lookahead_student")
        p["enrolments"][0]["startDate"] = _LOOKAHEAD_PLACEMENT_START.isoformat()
        membership(_klass(0, 5), p["id"])["startDate"] = _LOOKAHEAD_PLACEMENT_START.isoformat()
        # Moved away; still in the class list.
        student("placement_ended")["enrolments"][0]["endDate"] = _PLACEMENT_END.isoformat()
        student("cancelled")["enrolments"][0]["cancelled"] = True
        student("unknown_school")["enrolments"][0]["enroledAt"]["id"] = _org("skolomrade")
        membership(_core(2, 1, 1), _seat("membership_not_started"))["startDate"] = _MEMBERSHIP_START.isoformat()
        membership(_core(0, 5, 2), _seat("membership_ended"))["endDate"] = _MEMBERSHIP_END.isoformat()
        groups[_core(0, 0, 0)]["groupMemberships"].append({"person": {"id": _MISSING_MEMBER}})

        # Quirks: the records stay valid.
        student("mixed_enroled_at")["enrolments"][0]["enroledAt"]["id"] = _mixed_case(_school(0, 1))
        membership(_klass(0, 4), _seat("mixed_member_ref"))["person"]["id"] = _mixed_case(_seat("mixed_member_ref"))
        del student("open_start")["enrolments"][0]["startDate"]
        del student("status_absent")["personStatus"]
        groups[_language(1, 8, 1)]["groupType"] = "UNDERVISNING"
        activities[_PERSON_REF_ACTIVITY]["teachers"] = [{"person": {"id": _PERSON_REF_TEACHER}, "grader": True}]

        # Staff with date and link problems.
        lookahead = self.staff_member(
            out, _special_person("teacher_lookahead"), "Lärare", _school(0, 0), _TEACHER_LOOKAHEAD_START
        )
        activities[_activity(_core(0, 0, 1))]["teachers"].append({"duty": {"id": lookahead["id"]}, "grader": False})
        self.staff_member(out, _special_person("admin_not_started"), "Skoladministratör", _school(0, 2), _ADMIN_START)
        ended = self.staff_member(
            out, _special_person("teacher_ended"), "Lärare", _school(0, 1), _TEACHER_ENDED_START, _TEACHER_ENDED_END
        )
        activities[_activity(_core(1, 1, 2))]["teachers"].append({"duty": {"id": ended["id"]}, "grader": False})
        self.staff_member(out, _special_person("teacher_no_group"), "Lärare", _school(0, 2), YEAR_START)
        self.staff_member(
            out, _special_person("staff_unknown_school"), "Skolsköterska", _MISSING_ORG, _term_start(SCHOOL_YEAR - 5)
        )
        given, family, sex, address = self.staff_name()
        out.staff.append(
            self.person(
                _special_person("no_school_link"),
                given,
                family,
                sex,
                self.civic_no(SCHOOL_YEAR - 56, SCHOOL_YEAR - 31),
                _on(-2, 1, 1),
                [{"value": address, "type": "Skola personal"}],
                self.address(),
            )
        )

        # Groups with their own problems, and references to groups that were not exported.
        special = (
            (
                "unknown_school",
                "Simskola åk 3",
                "Undervisning",
                "GR",
                _org("skolomrade"),
                YEAR_START,
                YEAR_END,
                _staff(0, 3),
            ),
            (
                "not_started",
                f"Programmering 1 vt{_yy(SCHOOL_YEAR + 1)}",
                "Undervisning",
                "GY",
                _school(0, 2),
                _GROUP_START,
                YEAR_END,
                _staff(2, 4),
            ),
            (
                "ended",
                f"Matematik 8A {_yy(SCHOOL_YEAR - 1)}/{_yy(SCHOOL_YEAR)}",
                "Undervisning",
                "GR",
                _school(0, 1),
                _ENDED_GROUP_START,
                _ENDED_GROUP_END,
                _staff(1, 5),
            ),
            ("mentor_group", "Mentorsgrupp 7A", "Mentor", "GR", _school(0, 1), YEAR_START, YEAR_END, None),
            ("schema_group", "Halvklass 6A grupp 1", "Schema", "GR", _school(0, 0), YEAR_START, YEAR_END, None),
        )
        for name, display, group_type, school_type, org_id, start, end, teacher in special:
            group = self.group(
                out, _special_group(name), display, group_type, school_type, org_id, _members(name), start, end
            )
            if teacher is not None:
                self.activity(out, group, [_duty(teacher)])
        duties[_duty(_staff(1, 6))].setdefault("assignmentRole", []).append(
            {"group": {"id": _special_group("mentor_group")}, "assignmentRoleType": "Mentor"}
        )
        klass_im = self.group(out, _special_group("klass_im"), _KLASS_IM, "Klass", "GY", _school(0, 2), [])
        del klass_im["groupMemberships"]
        duties[_duty(_staff(2, 1))].setdefault("assignmentRole", []).append(
            {"group": {"id": klass_im["id"]}, "assignmentRoleType": "Mentor"}
        )

        self.activity(
            out,
            {
                "id": _special_group("missing_activity_group"),
                "displayName": "Modersmål arabiska",
                "startDate": YEAR_START.isoformat(),
                "endDate": YEAR_END.isoformat(),
                "organisation": {"id": _school(0, 1)},
            },
            [_duty(_TEACHER_MISSING_ACTIVITY_GROUP)],
        )
        duties[_duty(_TEACHER_MISSING_MENTOR_GROUP)].setdefault("assignmentRole", []).append(
            {"group": {"id": _special_group("missing_mentor_group")}, "assignmentRoleType": "Mentor"}
        )

    def build(self) -> dict[str, list[dict]]:
        organisations = self.organisations()
        cycles = []
        for cycle in range(self.scale):
            out = self.cycle(cycle)
            if cycle == 0:
                self.defects(out)
            cycles.append(out)
        persons = [p for out in cycles for p in (*out.students, *out.staff, *out.guardians)]
        # Both originals are students of Lindbyskolan, so on the first page; the repeats go on the last one.
        by_id = {p["id"]: p for p in persons}
        persons.append(copy.deepcopy(by_id[_seat("exact_repeat")]))
        conflicting = copy.deepcopy(by_id[_seat("duplicate_id")])
        # A second given name added between two pages of the export.
        extra = "-Marie" if conflicting["sex"] == "Kvinna" else " Erik"
        conflicting["givenName"] += extra
        persons.append(conflicting)
        return {
            "organisations": organisations,
            "persons": persons,
            "duties": [d for out in cycles for d in out.duties],
            "groups": [g for out in cycles for g in out.groups],
            "activities": [a for out in cycles for a in out.activities],
        }


# ─── Writing the drop ────────────────────────────────────────────────────────────────────────────────────
def _page_token(drop_date: dt.date, next_page: int) -> str:
    """An opaque token, as a registry's API hands them out."""
    raw = json.dumps({"drop": drop_date.isoformat(), "page": next_page}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("ascii")).decode("ascii").rstrip("=")


def _layout(drop_date: dt.date) -> dict[str, drops.OneFile | drops.Pages]:
    """Every file form a registry may send (CONTRACT §2): page objects, a folder of pages, a plain array, a BOM."""
    return {
        "organisations": drops.OneFile(drops.INDENTED),
        "persons": drops.Pages(
            PERSONS_PER_PAGE, drops.INDENTED, token=functools.partial(_page_token, drop_date), name="page-{:03d}.json"
        ),
        "duties": drops.OneFile(drops.INDENTED),
        "groups": drops.OneFile(drops.JsonStyle(indent=1, newline=True, bom=True)),
        "activities": drops.OneFile(drops.INDENTED, array=True),
    }


def drop_folder(data_dir: Path, drop_date: dt.date = DEMO_DROP_DATE) -> Path:
    return Path(data_dir) / "registries" / DEMO_SOURCE_ID / drop_date.isoformat()


def generate_demo(data_dir: Path, drop_date: dt.date = DEMO_DROP_DATE, scale: int = 1) -> Path:
    """Writes data_dir/sources.yaml and data_dir/registries/lindby/<drop_date>/...; returns the drop folder.

    `scale` multiplies the number of schools (scale=1: three school units, about 500 students); the
    deliberate defects are made once, in the first three schools. An existing drop folder of that date is
    replaced; other drops are left alone.
    """
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, not {scale!r}")
    data = _Builder(drop_date, scale).build()
    data_dir = Path(data_dir)
    drop = drop_folder(data_dir, drop_date)
    if drop.exists():
        shutil.rmtree(drop)
    drop.mkdir(parents=True)
    (data_dir / "sources.yaml").write_bytes(SOURCES_YAML.encode("utf-8"))
    # Made-up people only: this marker lets the drop's civic numbers be hashed with the public demo key.
    (drop / DEMO_MARKER).write_bytes(DEMO_MARKER_TEXT.encode("utf-8"))
    return drops.write_ss12000(drop, data, _layout(drop_date))
