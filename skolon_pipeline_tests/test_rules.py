"""The eligibility rules and every reason code (CONTRACT §3-4), straight from canonical table rows.

Each test builds the canonical staging rows it is about (skolon_pipeline_tests/canonical_rows.py: no drop, no
JSON, nothing published), runs the validate and rules stages and reads what they leave. What the SS12000 reader
makes of a drop (which addresses it keeps, repaired letter case, assignment roles, exact repeats) is tested in
test_reader_ss12000.py.

The default night is 2026-12-01 with term starts 2026-08-17 and 2027-01-11 and 30 days look-ahead, so the
next look-ahead window is 2026-12-12 .. 2027-01-11 and on 2026-12-01 the effective start date is the night.
"""

from __future__ import annotations

import datetime as dt

import pytest

from skolon_pipeline_tests.canonical_rows import TERM_END, TERM_START


def _conserved(night) -> None:
    assert {e: g["missing"] for e, g in night.conservation.items()} == {
        "person": 0,
        "group": 0,
        "membership": 0,
        "activity": 0,
        "teacher_assignment": 0,
    }


# ─── Who is included, and as what ────────────────────────────────────────────────────────────────────────


def test_student_teacher_and_staff_are_included_with_memberships_and_affiliations(canon, evaluate_rows):
    school = canon.school()
    student = canon.student(school)
    klass = canon.group(school, members=[student])
    teacher, _ = canon.teach(school, klass)
    principal, _ = canon.staff(school, role="Rektor")

    night = evaluate_rows(canon)

    assert night.users() == {student: "student", teacher: "teacher", principal: "staff"}
    assert night.memberships() == {(klass, student, "student"), (klass, teacher, "teacher")}
    affiliations = set(night.query("SELECT user_id, school_id, role FROM nightly.school_affiliations"))
    assert affiliations == {(student, school, "student"), (teacher, school, "teacher"), (principal, school, "staff")}
    assert night.query("SELECT count(*) FROM nightly.exclusions")[0][0] == 0
    _conserved(night)


def test_membership_dates_default_to_the_group_dates(canon, evaluate_rows):
    school = canon.school()
    plain, dated = canon.student(school), canon.student(school)
    klass = canon.group(school, start="2026-08-17", end="2027-06-11", members=[plain])
    canon.member(klass, dated, start="2026-09-01")
    teacher, _ = canon.teach(school, klass)  # an assignment without dates of its own
    night = evaluate_rows(canon)
    dates = {
        user: (str(s), str(e))
        for user, s, e in night.query(
            "SELECT user_id, start_date, end_date FROM nightly.memberships WHERE group_id = ?", [klass]
        )
    }
    assert dates[plain] == ("2026-08-17", "2027-06-11")
    assert dates[dated] == ("2026-09-01", "2027-06-11")
    assert dates[teacher] == ("2026-08-17", "2027-06-11")


def test_school_has_its_huvudman_as_organisation(canon, evaluate_rows):
    forvaltning = canon.org("Förvaltningen", "Förvaltning", parent=canon.authority)
    school = canon.org("Ekskolan", "Skolenhet", parent=forvaltning, school_unit_code="87654321")
    night = evaluate_rows(canon)
    assert night.query(
        "SELECT school_id, name, school_unit_code, organisation_id, organisation_name FROM nightly.schools"
    ) == [(school, "Ekskolan", "87654321", canon.authority, "Testby kommun")]


@pytest.mark.parametrize(
    ("enrolled", "duties", "rules", "role"),
    [
        (True, ["Lärarassistent"], {}, "staff"),  # a duty and an enrolment: staff, not student
        (False, ["Lärare", "Kurator"], {}, "staff"),  # a teaching duty and another one, without a group
        (False, ["Lärare"], {"teacher_requires_group": False}, "teacher"),  # no group, none required
    ],
    ids=["duty-and-enrolment-is-staff", "teaching-and-other-duty-is-staff", "teacher-without-group-not-required"],
)
def test_the_role_a_person_has_by_their_links(canon, evaluate_rows, enrolled, duties, rules, role):
    school = canon.school()
    person = canon.student(school) if enrolled else canon.person()
    for duty_role in duties:
        canon.duty(person, school, role=duty_role)
    night = evaluate_rows(canon, rules=rules)
    assert night.users()[person] == role


# ─── Person checks ───────────────────────────────────────────────────────────────────────────────────────


def _student(**values):
    return lambda canon, school: canon.student(school, **values)


def _staff(**values):
    return lambda canon, school: canon.staff(school, **values)[0]


def _cancelled(canon, school):
    person = canon.person()
    canon.enrol(person, school, cancelled="true")
    return person


# One person, the reasons they are held back with (each case once; the rows the builder adds otherwise are
# valid, so the reasons are exactly these).
PERSON_REASONS = [
    ("missing-names", _student(given=None, family=None), {"MISSING_GIVEN_NAME", "MISSING_FAMILY_NAME"}),
    ("invalid-email", _student(emails=[("anna@@skola.test", "Skola elev")]), {"INVALID_EMAIL"}),
    ("emigrated", _student(person_status="Utvandrad"), {"PERSON_INACTIVE"}),
    ("duplicate-id", _student(duplicate_contents=2), {"DUPLICATE_ID"}),
    ("no-school-link", lambda canon, school: canon.person(), {"NO_SCHOOL_LINK"}),
    ("no-group-assignment", _staff(role="Förstelärare"), {"NO_GROUP_ASSIGNMENT"}),
    ("employment-ended", _staff(role="Skoladministratör", start="2020-01-01", end="2026-11-30"), {"EMPLOYMENT_ENDED"}),
    ("placement-ended", _student(start="2025-08-17", end="2026-10-31"), {"PLACEMENT_ENDED"}),
    ("placement-cancelled", _cancelled, {"PLACEMENT_CANCELLED"}),
    (
        "every-reason-not-just-the-first",
        _student(given=None, start="2025-08-17", end="2026-06-01", emails=[], person_status="Avliden"),
        {"MISSING_GIVEN_NAME", "MISSING_EMAIL", "PERSON_INACTIVE", "PLACEMENT_ENDED"},
    ),
]


@pytest.mark.parametrize(
    ("case", "reasons"), [(c[0], c[2]) for c in PERSON_REASONS], ids=[c[0] for c in PERSON_REASONS]
)
def test_person_reasons(evaluate_cases, case, reasons):
    night, ids, _school = evaluate_cases({c[0]: c[1] for c in PERSON_REASONS})  # every case in one night
    person = ids[case]
    assert night.reasons(person) == reasons
    assert person not in night.users()
    # none of these is a wait: no date says when the person would appear
    assert {night.exclusion(person, code)["visible_from"] for code in reasons} == {None}
    _conserved(night)


def test_missing_email_when_only_private_or_none(canon, evaluate_rows):
    school = canon.school()
    private = canon.student(school, emails=[], private_emails=1)  # the reader kept none, counted one Privat
    none = canon.student(school, emails=[])
    night = evaluate_rows(canon)
    assert "private" in night.exclusion(private, "MISSING_EMAIL")["detail"]
    assert night.exclusion(none, "MISSING_EMAIL")["detail"] == "no e-mail address"


def test_email_choice_prefers_school_types_then_work_then_school_domain(canon, evaluate_rows):
    school = canon.school()
    # the addresses the reader keeps (school types, or on a school domain), in registry order
    school_typed = canon.student(
        school,
        emails=[("arbete@foretag.se", "Arbete övrigt"), ("Elev.Ett@Skola.Test", "Skola elev")],
        private_emails=1,
    )
    work_typed = canon.student(school, emails=[("x@elev.testby.se", "Privat"), ("arbete2@foretag.se", "Arbete övrigt")])
    by_domain = canon.student(school, emails=[("elev.tva@elev.testby.se", "Privat")], private_emails=1)
    night = evaluate_rows(canon, rules={"school_email_domains": ["elev.testby.se"]})
    emails = dict(night.query("SELECT user_id, email FROM nightly.users"))
    assert emails == {
        school_typed: "elev.ett@skola.test",
        work_typed: "arbete2@foretag.se",
        by_domain: "elev.tva@elev.testby.se",
    }


def test_duplicate_email_excludes_both_and_names_the_other(canon, evaluate_rows):
    school = canon.school()
    a = canon.student(school, emails=[("samma@skola.test", "Skola elev")])
    b = canon.student(school, emails=[("SAMMA@skola.test", "Skola elev")])
    # Someone excluded anyway does not take part in the clash.
    gone = canon.student(school, start="2025-08-17", end="2026-06-01", emails=[("samma@skola.test", "Skola elev")])
    night = evaluate_rows(canon)
    assert night.exclusion(a, "DUPLICATE_EMAIL")["detail"].endswith(b)
    assert night.exclusion(b, "DUPLICATE_EMAIL")["detail"].endswith(a)
    assert night.reasons(gone) == {"PLACEMENT_ENDED"}


# ─── School links ────────────────────────────────────────────────────────────────────────────────────────


def test_no_school_link_but_guardians_are_not_reported(canon, evaluate_rows):
    school = canon.school()
    guardian = canon.person(emails=[], private_emails=1)
    child = canon.student(school)
    canon.guardian_of(child, guardian)
    loner = canon.person()
    night = evaluate_rows(canon)
    assert night.reasons(loner) == {"NO_SCHOOL_LINK"}
    assert night.reasons(guardian) == set()
    assert guardian not in night.users()
    assert night.users()[child] == "student"
    _conserved(night)


def test_end_date_is_inclusive(canon, evaluate_rows):
    last_day = canon.student(canon.school(), end="2026-12-01")
    night = evaluate_rows(canon, as_of="2026-12-01")
    assert night.users()[last_day] == "student"


def test_no_active_group_when_students_require_one(canon, evaluate_rows):
    school = canon.school()
    lonely = canon.student(school)
    member = canon.student(school)
    canon.group(school, members=[member])
    night = evaluate_rows(canon, rules={"student_requires_group": True})
    assert night.reasons(lonely) == {"NO_ACTIVE_GROUP"}
    assert night.users()[member] == "student"


def test_unknown_school_names_the_organisation(canon, evaluate_rows):
    school = canon.school()
    area = canon.org("Skolområdet", "Skola", parent=canon.authority)
    at_area = canon.student(area)
    nowhere, _duty = canon.staff("00000000-0000-0000-0000-0000000000ff")
    night = evaluate_rows(canon)
    assert "is a Skola, not a Skolenhet" in night.exclusion(at_area, "UNKNOWN_SCHOOL")["detail"]
    assert "is not in the drop" in night.exclusion(nowhere, "UNKNOWN_SCHOOL")["detail"]
    assert night.reasons(nowhere) == {"UNKNOWN_SCHOOL"}
    # An unknown old link does not matter for someone who is included by another.
    ok = canon.student(school)
    canon.enrol(ok, area, start="2020-08-17", end=None)
    assert evaluate_rows(canon).users()[ok] == "student"


# ─── Groups ──────────────────────────────────────────────────────────────────────────────────────────────


def test_group_reasons(canon, evaluate_rows):
    school = canon.school()
    area = canon.org("Skolområdet", "Skola", parent=canon.authority)
    student = canon.student(school)
    unknown_school = canon.group(area, group_type="Undervisning", members=[student])
    future = canon.group(school, start="2027-02-15", members=[student])
    ended = canon.group(school, start="2025-08-17", end="2026-06-12", members=[student])
    mentor_group = canon.group(school, group_type="Mentor", members=[student])
    night = evaluate_rows(canon)
    assert night.reasons(unknown_school) == {"GROUP_UNKNOWN_SCHOOL"}
    assert night.exclusion(future, "GROUP_NOT_STARTED")["visible_from"] == dt.date(2027, 2, 15)
    assert night.reasons(ended) == {"GROUP_ENDED"}
    assert night.reasons(mentor_group) == {"GROUP_TYPE_NOT_SYNCED"}
    # Memberships in excluded groups say so; the one held back by the group's start date says when.
    excluded = night.exclusion(f"{future}/{student}", "GROUP_EXCLUDED")
    assert excluded["visible_from"] == dt.date(2027, 2, 15)
    assert excluded["detail"] == "the group is excluded: GROUP_NOT_STARTED"
    assert night.exclusion(f"{ended}/{student}", "GROUP_EXCLUDED")["visible_from"] is None
    assert night.groups() == set()
    _conserved(night)


# ─── Memberships ─────────────────────────────────────────────────────────────────────────────────────────


def test_membership_reasons(canon, evaluate_rows):
    school = canon.school()
    ok, later, earlier, gone = (canon.student(school) for _ in range(4))
    dropped = canon.student(school, start="2025-08-17", end="2026-06-01")
    ghost = "00000000-0000-0000-0000-00000000abcd"
    klass = canon.group(school, members=[ok])
    canon.member(klass, later, start="2027-02-15")
    canon.member(klass, earlier, end="2026-11-01")
    canon.member(klass, dropped)
    canon.member(klass, ghost)
    teacher, duty = canon.staff(school)
    missing_group = "00000000-0000-0000-0000-00000000beef"
    for group in (klass, missing_group):  # one activity teaching both
        canon.assign(group, teacher, duty, start=TERM_START, end=TERM_END)
    night = evaluate_rows(canon)
    g = klass
    assert night.exclusion(f"{g}/{later}", "MEMBERSHIP_NOT_STARTED")["visible_from"] == dt.date(2027, 2, 15)
    assert night.reasons(f"{g}/{earlier}") == {"MEMBERSHIP_ENDED"}
    assert night.exclusion(f"{g}/{dropped}", "MEMBER_EXCLUDED")["detail"].endswith("PLACEMENT_ENDED")
    assert night.reasons(f"{g}/{ghost}") == {"UNKNOWN_PERSON"}
    assert night.reasons(f"{missing_group}/{teacher}") == {"UNKNOWN_GROUP"}
    assert night.memberships() == {(g, ok, "student"), (g, teacher, "teacher")}
    assert gone in night.users()  # in no group, still a user
    _conserved(night)


@pytest.mark.parametrize(
    ("periods", "included", "reason", "visible_from"),
    [
        # an ended period and the current one: in the roster, with the current period's dates
        ((("2025-08-17", "2026-06-01"), ("2026-11-01", "2027-06-11")), ("2026-11-01", "2027-06-11"), None, None),
        # two periods ahead: held back until the earliest of them
        ((("2027-03-01", None), ("2027-02-15", None)), None, "MEMBERSHIP_NOT_STARTED", dt.date(2027, 2, 15)),
        # both ended: ended, not waiting for anything
        ((("2025-08-17", "2026-01-31"), ("2026-02-01", "2026-06-01")), None, "MEMBERSHIP_ENDED", None),
        # the same period sent twice: one membership
        ((("2026-09-01", None), ("2026-09-01", None)), ("2026-09-01", "2027-06-11"), None, None),
    ],
)
def test_a_member_listed_twice_in_a_group_is_one_membership_by_all_periods(
    canon, evaluate_rows, periods, included, reason, visible_from
):
    school = canon.school()
    student = canon.student(school)
    klass = canon.group(school, start="2025-08-17", end="2027-06-11")
    teacher, duty = canon.staff(school)
    for start, end in periods:
        canon.member(klass, student, start=start, end=end)
        canon.assign(klass, teacher, duty, start=start, end=end)
    night = evaluate_rows(canon)
    dates = {
        (user, role): (str(s), str(e))
        for user, role, s, e in night.query(
            "SELECT user_id, role, start_date, end_date FROM nightly.memberships WHERE group_id = ?", [klass]
        )
    }
    if included:
        assert dates == {(student, "student"): included, (teacher, "teacher"): included}
        assert night.reasons(f"{klass}/{student}") == set()
    else:
        assert dates == {}
        assert night.reasons(f"{klass}/{student}") == {reason}
        # the teacher teaches no group tonight, so is no roster user either (MEMBER_EXCLUDED beside it)
        assert reason in night.reasons(f"{klass}/{teacher}")
        assert night.exclusion(f"{klass}/{student}", reason)["visible_from"] == visible_from
    _conserved(night)


def test_an_assignment_of_a_duty_not_in_the_drop_is_unknown_person(canon, evaluate_rows):
    klass = canon.group(canon.school())
    duty = "00000000-0000-0000-0000-0000000d0001"
    canon.assign(klass, None, duty)
    night = evaluate_rows(canon)
    row = night.exclusion(f"{klass}/{duty}", "UNKNOWN_PERSON")
    assert row["detail"].startswith("duty ")
    _conserved(night)


# ─── Validation becomes INVALID_RECORD ───────────────────────────────────────────────────────────────────


def test_impossible_dates_are_invalid_records_naming_field_and_check(canon, evaluate_rows):
    school = canon.school()
    bad_enrolment = canon.student(school, start="2026-02-30")
    member = canon.student(school)
    klass = canon.group(school)
    canon.member(klass, member, end="2026-13-01")
    backwards = canon.group(school, start="2026-08-17", end="2026-08-01")
    night = evaluate_rows(canon)
    detail = night.exclusion(bad_enrolment, "INVALID_RECORD")["detail"]
    assert detail == "enrolments[1].start_date failed iso_date ('2026-02-30')"
    membership = night.exclusion(f"{klass}/{member}", "INVALID_RECORD")
    assert "end_date failed iso_date" in membership["detail"]
    assert "end_not_before_start" in night.exclusion(backwards, "INVALID_RECORD")["detail"]
    assert night.users()[member] == "student"
    _conserved(night)


def test_validation_in_chunks_reports_bad_rows_in_every_chunk(canon, evaluate_rows, monkeypatch):
    """Large tables are validated in bounded chunks: a bad row in a later chunk is still found and named."""
    from skolon_pipeline.validate import canonical

    monkeypatch.setattr(canonical, "CHUNK_VECTORS", 1)  # 2 048 rows per chunk
    school = canon.school()
    students = [canon.student(school) for _ in range(2100)]
    klass = canon.group(school)
    for n, student in enumerate(students):
        dates = {5: {"end": "2026-13-01"}, 2090: {"start": "2026-02-30"}}.get(n, {})  # first and second chunk
        canon.member(klass, student, **dates)
    night = evaluate_rows(canon)
    first = night.exclusion(f"{klass}/{students[5]}", "INVALID_RECORD")
    second = night.exclusion(f"{klass}/{students[2090]}", "INVALID_RECORD")
    assert first["detail"] == "group_memberships[6].end_date failed iso_date ('2026-13-01')"
    assert second["detail"] == "group_memberships[2091].start_date failed iso_date ('2026-02-30')"
    assert len(night.memberships()) == 2098
    _conserved(night)


def test_tables_checked_two_at_a_time_report_what_one_at_a_time_reports(canon, tmp_path, monkeypatch):
    """validate_staging runs Pandera over two tables at once; every table's report and every INVALID_RECORD
    row, in the order written, are what checking one table after another gives."""
    import duckdb

    from skolon_pipeline import duck
    from skolon_pipeline import night as stages
    from skolon_pipeline.bounds import MAX_VALUE
    from skolon_pipeline.validate import canonical

    school = canon.school()
    canon.student(school, start="2026-02-30")  # enrolments
    canon.student(school, given="x" * (MAX_VALUE + 1))  # persons: an oversized value, cut before Pandera
    backwards = canon.group(school, start="2026-08-17", end="2026-08-01")  # groups
    canon.member(backwards, canon.student(school), end="2026-13-01")  # group_memberships
    canon.staff(school, start="2020-02-31")  # duties
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(canonical, "VALIDATION_THREADS", threads)
        path = tmp_path / f"staging-{threads}.duckdb"
        with duck.connect(path) as con:
            canon._write(con)
        reports = stages.validate(canon.source_id, path)
        with duckdb.connect(str(path), read_only=True) as con:
            written = con.execute("SELECT table_name, record_id, field, check_name, detail FROM invalid_records")
            results.append((reports, written.fetchall()))
    (one_reports, one_rows), (two_reports, two_rows) = results
    assert two_reports == one_reports
    assert two_rows == one_rows
    assert [r.table for r in two_reports] == list(canonical.CANONICAL_TABLES)
    failed = {r.table for r in two_reports if r.failures}
    assert {"enrolments", "groups", "group_memberships", "duties"} <= failed
    assert ("persons", "given_name", "max_size") in {(t, f, c) for t, _, f, c, _ in two_rows}


# ─── Look-ahead and visible_from ─────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("as_of", "included"),
    [
        ("2026-12-11", False),  # the day before the window opens
        ("2026-12-12", True),  # first day of the window: loaded ahead
        ("2027-01-04", True),  # inside the window
        ("2027-01-11", True),  # the term-start day itself
        ("2027-01-12", True),  # after the term start: it has started anyway
    ],
)
def test_lookahead_window_around_term_start(canon, evaluate_rows, as_of, included):
    newcomer = canon.student(canon.school(), start="2027-01-11")
    night = evaluate_rows(canon, as_of=as_of, drop_date="2026-12-01")
    assert (newcomer in night.users()) is included
    if not included:
        assert night.exclusion(newcomer, "PLACEMENT_NOT_STARTED")["visible_from"] == dt.date(2026, 12, 12)


# A record held back by its start date alone, the night, and the night it will appear.
NOT_STARTED = [
    ("placement", _student(start="2027-03-01"), "PLACEMENT_NOT_STARTED", "2026-12-01", dt.date(2027, 3, 1)),
    (
        "employment",
        _staff(role="Skoladministratör", start="2027-02-01"),
        "EMPLOYMENT_NOT_STARTED",
        "2026-12-01",
        dt.date(2027, 2, 1),
    ),
    # CONTRACT §4: a duty starting 2027-01-05, term start 2027-01-11, 30 days → visible on 2026-12-12.
    (
        "contract-example-duty-before-term-start",
        _staff(role="Skoladministratör", start="2027-01-05"),
        "EMPLOYMENT_NOT_STARTED",
        "2026-12-01",
        dt.date(2026, 12, 12),
    ),
    # a start after the term start is not loaded ahead
    (
        "start-after-term-start",
        _student(start="2027-01-20"),
        "PLACEMENT_NOT_STARTED",
        "2026-12-20",
        dt.date(2027, 1, 20),
    ),
]


@pytest.mark.parametrize(
    ("case", "code", "as_of", "visible_from"),
    [(c[0], *c[2:]) for c in NOT_STARTED],
    ids=[c[0] for c in NOT_STARTED],
)
def test_not_started_records_say_when_they_will_appear(evaluate_cases, case, code, as_of, visible_from):
    # the cases of one night in one evaluation
    night, ids, school = evaluate_cases({c[0]: c[1] for c in NOT_STARTED if c[3] == as_of}, as_of=as_of)
    person = ids[case]
    row = night.exclusion(person, code)
    assert row["visible_from"] == visible_from
    assert row["school_id"] == school
    assert night.reasons(person) == {code}


def test_end_dates_are_never_brought_forward(canon, evaluate_rows):
    leaving = canon.student(canon.school(), end="2026-12-20")
    night = evaluate_rows(canon, as_of="2026-12-15")  # inside the window, effective start 2027-01-11
    assert night.users()[leaving] == "student"


def test_record_that_ends_before_it_would_be_visible_has_no_visible_from(canon, evaluate_rows):
    school = canon.school()
    never = canon.student(school, start="2027-03-01", end="2027-02-01")
    later = canon.student(school, start="2027-03-01")  # the same start without the end: it does get a date
    night = evaluate_rows(canon)
    # End before start is itself invalid, and a record with a fix needed never gets a date: held back with both
    # reasons, neither with a visible_from (a row per reason, so an included record would fail here too).
    assert never not in night.users()
    rows = night.query(
        "SELECT reason_code, visible_from FROM nightly.exclusions WHERE as_of = ? AND record_id = ?",
        [night.as_of, never],
    )
    assert sorted(rows) == [("INVALID_RECORD", None), ("PLACEMENT_NOT_STARTED", None)]
    assert night.exclusion(later, "PLACEMENT_NOT_STARTED")["visible_from"] == dt.date(2027, 3, 1)


def test_overlapping_windows_take_the_latest_term_start(canon, evaluate_rows):
    school = canon.school()
    first = canon.student(school, start="2027-01-11")
    second = canon.student(school, start="2027-01-25")
    night = evaluate_rows(
        canon, as_of="2027-01-05", rules={"term_starts": ["2027-01-11", "2027-01-25"], "lookahead_days": 30}
    )
    assert night.users().keys() >= {first, second}


def test_visible_from_with_fix_needed_is_null(canon, evaluate_rows):
    future_nameless = canon.student(canon.school(), given=None, start="2027-03-01")
    night = evaluate_rows(canon)
    assert night.reasons(future_nameless) == {"MISSING_GIVEN_NAME", "PLACEMENT_NOT_STARTED"}
    assert night.query(
        "SELECT DISTINCT visible_from FROM nightly.exclusions WHERE record_id = ?", [future_nameless]
    ) == [(None,)]
