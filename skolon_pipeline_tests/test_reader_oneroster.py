"""Reading OneRoster 1.1/1.2 CSV drops: the public samples, the package stage's errors, the record stage's
exclusions, the tolerated quirks of real exports, exclusive end dates and bulk semantics."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from skolon_pipeline import night
from skolon_pipeline.config import load_installation
from skolon_pipeline.sources.drops import SourceError
from skolon_pipeline_tests.conftest import SHARED, Night, rules_night
from skolon_pipeline_tests.oneroster_drop import OneRosterDrop, oneroster_source
from skolon_pipeline_tests.registry import write_sources

SAMPLES = SHARED / "reference" / "oneroster"
MINIMAL_11 = SAMPLES / "moodle-enrol_oneroster" / "Test_minimal_data_set"
MOODLE_12 = SAMPLES / "moodle-enrol_oneroster" / "oneroster_test_data"
NONCONFORMANT = SAMPLES / "oneroster-import" / "OneRosterv1p1BaseCSV"


@pytest.fixture
def run_oneroster(tmp_path):
    """Runs one night over OneRoster drops already written under tmp_path/data/registries/<id>/, up to the rules."""

    def run(as_of: str, sources: list[dict] | None = None, rules: dict | None = None) -> Night:
        data_dir = tmp_path / "data"
        write_sources(data_dir, sources or [oneroster_source()], rules)
        night_date = dt.date.fromisoformat(as_of)
        evaluated = night.evaluate_night(load_installation(data_dir), night_date, tmp_path / "staging")
        assert not any(g["missing"] for g in evaluated.conservation.values()), evaluated.conservation
        return rules_night(evaluated, night_date)

    return run


def drop_dir(tmp_path: Path, date: str, source_id: str = "or") -> Path:
    return tmp_path / "data" / "registries" / source_id / date


def copy_sample(sample: Path, target: Path) -> Path:
    shutil.copytree(sample, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def codes(n: Night) -> set[tuple[str, str]]:
    return set(n.query("SELECT record_id, reason_code FROM nightly.exclusions WHERE as_of = ?", [n.as_of]))


def warning_codes(n: Night) -> set[tuple[str, str]]:
    return {(r, c) for r, c, _ in n.warnings()}


# ── public samples ─────────────────────────────────────────────────────────────────────────────────────


def test_minimal_11_sample_loads_cleanly(tmp_path, run_oneroster):
    copy_sample(MINIMAL_11, drop_dir(tmp_path, "2022-10-01"))
    n = run_oneroster("2022-10-15")
    # The only org is a department with no school above it: it stands in for the school.
    assert n.query("SELECT school_id, name FROM nightly.schools") == [("or:org-sch-222-456", "History Department")]
    assert n.groups() == {"or:cls-222-123456", "or:cls-222-123478"}
    # Term 2022-09-01 .. 2022-12-24 (exclusive): the last day is 2022-12-23; homeroom → Klass, Scheduled → Undervisning.
    assert set(n.query("SELECT group_id, group_type, start_date, end_date FROM nightly.groups")) == {
        ("or:cls-222-123456", "Undervisning", dt.date(2022, 9, 1), dt.date(2022, 12, 23)),
        ("or:cls-222-123478", "Klass", dt.date(2022, 9, 1), dt.date(2022, 12, 23)),
    }
    reasons = {code for _, code in codes(n)}
    assert "INVALID_RECORD" not in reasons and not any(c.startswith("UNKNOWN") for c in reasons)
    # The sample has no e-mail addresses: everyone is held back for that, and the parent is no roster user.
    persons = n.query("SELECT record_id, reason_code FROM nightly.exclusions WHERE entity_type = 'person'")
    assert {r for r, c in persons if c == "MISSING_EMAIL"} == {
        "or:usr-222-123456",
        "or:usr-222-66778899",
        "or:usr-222-987654",
        "or:usr-222-1234561232",
        "or:usr-222-567891",
    }
    assert ("or:cls-222-123456", "ENUM_CASE") in warning_codes(n)
    assert ("or:org-sch-222-456", "DEPARTMENT_AS_SCHOOL") in warning_codes(n)


@pytest.mark.slow
def test_minimal_11_sample_with_addresses_publishes_its_class_lists(tmp_path, run_oneroster):
    drop = copy_sample(MINIMAL_11, drop_dir(tmp_path, "2022-10-01"))
    edit(
        drop / "users.csv",
        "usr-222-123456,,,TRUE,org-sch-222-456,teacher,john.doe,,John,Doe,,jogn.doe,,",
        "usr-222-123456,,,TRUE,org-sch-222-456,teacher,john.doe,,John,Doe,,jogn.doe,john.doe@school.test,",
    )
    edit(
        drop / "users.csv",
        "usr-222-1234561232,,,TRUE,org-sch-222-456,student,mmichel.jones,,mmichel,Jones,,,,",
        "usr-222-1234561232,,,TRUE,org-sch-222-456,student,mmichel.jones,,mmichel,Jones,,,mm@school.test,",
    )
    n = run_oneroster("2022-10-15")
    assert n.users() == {"or:usr-222-123456": "teacher", "or:usr-222-1234561232": "student"}
    assert ("or:cls-222-123456", "or:usr-222-123456", "teacher") in n.memberships()
    assert ("or:cls-222-123478", "or:usr-222-1234561232", "student") in n.memberships()
    # the exclusive end date: the classes are still in on the 23rd of December, gone on the 24th
    assert run_oneroster("2022-12-23").groups() == {"or:cls-222-123456", "or:cls-222-123478"}
    # (half the memberships end that night: the mass-removal guard is lifted, this test is about the end date)
    assert run_oneroster("2022-12-24", rules={"max_removal_share": 1.0, "max_removal_share_week": 1.0}).exclusion(
        "or:cls-222-123478", "GROUP_ENDED"
    )["detail"] == ("the group ended on 2022-12-23")


def test_moodle_12_sample_is_all_delta_and_is_refused_clearly(tmp_path):
    drop = copy_sample(MOODLE_12, drop_dir(tmp_path, "2023-10-02"))
    write_sources(tmp_path / "data", [oneroster_source()])
    source = load_installation(tmp_path / "data").source("or")
    with pytest.raises(SourceError) as err:
        night.extract(source, dt.date(2023, 10, 2), tmp_path / "staging")
    message = str(err.value)
    assert "source 'or'" in message and str(drop / "manifest.csv") in message
    assert "delta files are not supported yet" in message and "file.users=delta" in message


def _moodle_12_as_bulk(tmp_path) -> Path:
    drop = copy_sample(MOODLE_12, drop_dir(tmp_path, "2023-10-02"))
    edit(drop / "manifest.csv", ",delta", ",bulk")
    return drop


def test_moodle_12_sample_as_bulk_reads_roles_csv(tmp_path, run_oneroster):
    drop = _moodle_12_as_bulk(tmp_path)
    edit(drop / "users.csv", "bruce.wayne,,", "bruce.wayne,bruce@gotham.test,")
    n = run_oneroster("2023-10-02")
    assert n.users() == {"or:user_0": "student"}
    assert n.memberships() == {("or:class_001", "or:user_0", "student")}
    assert n.query("SELECT start_date, end_date FROM nightly.groups") == [(dt.date(2023, 9, 4), dt.date(2024, 1, 25))]


def test_moodle_12_sample_with_the_documented_defects(tmp_path, run_oneroster):
    """PROVENANCE lists deliberate defects that the stored copy does not have (it is clean, and all delta);
    this bulk copy puts them in: status outside the enum, non-ISO dates, a reference to a missing org, a blank
    manifest value. Each becomes an exclusion, and the run goes on."""
    drop = _moodle_12_as_bulk(tmp_path)
    edit(drop / "users.csv", "bruce.wayne,,", "bruce.wayne,bruce@gotham.test,")
    edit(drop / "manifest.csv", "oneroster.version,1.2", "oneroster.version,")
    edit(drop / "classes.csv", "CLASS_001,active,", "CLASS_001,actve,")
    edit(drop / "academicSessions.csv", "2023-09-04", "09/04/2023")
    with open(drop / "roles.csv", "a", encoding="utf-8") as f:
        f.write("ROLE_9,active,2023-10-02T00:00:00.000Z,USER_0,secondary,student,,,ORG_9,\r\n")
    with open(drop / "enrollments.csv", "a", encoding="utf-8") as f:
        f.write("ENROLLMENT_002,active,2023-10-02T00:00:00.000Z,CLASS_404,ORG_1,USER_0,student,,,\r\n")
    n = run_oneroster("2023-10-02")
    group = n.query("SELECT reason_code, detail FROM nightly.exclusions WHERE record_id = 'or:class_001'")
    assert ("INVALID_RECORD", "classes.status failed isin ('actve')") in group
    assert ("INVALID_RECORD", "group_terms.start_date failed iso_date ('09/04/2023')") in group
    assert n.reasons("or:class_404/or:user_0") == {"UNKNOWN_GROUP"}
    # The student is included by the enrolment at ORG_1; the role at the missing ORG_9 does not clutter the report.
    assert n.users() == {"or:user_0": "student"}
    assert ("manifest.csv", "MANIFEST_VALUE_BLANK") in warning_codes(n)


def test_moodle_12_sample_with_a_misspelled_header_fails_naming_file_and_header(tmp_path):
    drop = _moodle_12_as_bulk(tmp_path)
    edit(drop / "users.csv", "sourcedId,status,dateLastModified,", "sourcedId,status,dataLastModified,")
    write_sources(tmp_path / "data", [oneroster_source()])
    with pytest.raises(SourceError) as err:
        night.extract(load_installation(tmp_path / "data").source("or"), dt.date(2023, 10, 2), tmp_path / "staging")
    assert err.value.file == str(drop / "users.csv")
    assert "required header 'dateLastModified' is missing (found 'dataLastModified': misspelled?)" in str(err.value)


@pytest.mark.slow
def test_nonconformant_sample_loads_what_it_can_and_reports_the_rest(tmp_path, run_oneroster):
    copy_sample(NONCONFORMANT, drop_dir(tmp_path, "2017-09-01"))
    n = run_oneroster("2017-09-15")
    assert {r[0] for r in n.query("SELECT school_id FROM nightly.schools")} == {"or:12345", "or:54321"}
    # No e-mail addresses; the classes name term 1 but academicSessions.csv has only its header.
    assert n.reasons("or:user1") == {"MISSING_EMAIL"} and n.reasons("or:user2") == {"MISSING_EMAIL"}
    assert n.exclusion("or:class1", "INVALID_RECORD")["detail"] == (
        "classes.termSourcedIds names academic session or:1, which is not in academicSessions.csv"
    )
    assert n.reasons("or:class1/or:user1") == {"GROUP_EXCLUDED", "MEMBER_EXCLUDED"}
    warned = warning_codes(n)
    assert {
        ("academicSessions.csv", "CSV_HEADER_ONLY"),
        ("users.csv", "CSV_EXTRA_COLUMNS"),
        ("orgs.csv", "CSV_EXTRA_COLUMNS"),
        ("enrollments.csv", "CSV_MISSING_COLUMN"),
    } <= warned


# ── package stage ──────────────────────────────────────────────────────────────────────────────────────


def _extract_error(tmp_path, as_of="2026-12-01") -> SourceError:
    write_sources(tmp_path / "data", [oneroster_source()])
    with pytest.raises(SourceError) as err:
        night.extract(
            load_installation(tmp_path / "data").source("or"), dt.date.fromisoformat(as_of), tmp_path / "staging"
        )
    return err.value


def test_missing_manifest_fails_the_source(tmp_path):
    drop = OneRosterDrop()
    drop.basic()
    path = drop.write(drop_dir(tmp_path, "2026-12-01"))
    (path / "manifest.csv").unlink()
    err = _extract_error(tmp_path)
    assert err.file == str(path / "manifest.csv") and "a OneRoster drop needs manifest.csv" in err.problem


def test_file_listed_but_missing_fails_the_source(tmp_path):
    drop = OneRosterDrop()
    drop.basic()
    path = drop.write(drop_dir(tmp_path, "2026-12-01"))
    (path / "roles.csv").unlink()
    err = _extract_error(tmp_path)
    assert err.file == str(path / "roles.csv") and "the manifest lists file.roles as bulk" in err.problem


def test_required_header_missing_is_named(tmp_path):
    drop = OneRosterDrop()
    drop.basic()
    path = drop.write(drop_dir(tmp_path, "2026-12-01"))
    edit(path / "classes.csv", ",classType,", ",class_type,")
    err = _extract_error(tmp_path)
    assert err.file == str(path / "classes.csv")
    assert "required header 'classType' is missing (found 'class_type': misspelled?)" in err.problem


def test_undecodable_file_fails_the_source(tmp_path):
    drop = OneRosterDrop()
    drop.basic()
    path = drop.write(drop_dir(tmp_path, "2026-12-01"))
    (path / "users.csv").write_bytes("sourcedId,status".encode("utf-16"))
    err = _extract_error(tmp_path)
    assert err.file == str(path / "users.csv") and "not decodable" in err.problem


# ── tolerated quirks, each with a warning ──────────────────────────────────────────────────────────────


CSV_FILES = ("orgs", "academicSessions", "classes", "users", "roles", "enrollments")


@pytest.mark.parametrize(
    ("options", "warning", "files"),
    [
        ({"encoding": "utf-8-sig"}, "CSV_BOM", (*CSV_FILES, "manifest")),
        ({"delimiter": ";"}, "CSV_SEMICOLON", CSV_FILES),
        ({"encoding": "cp1252"}, "CSV_WINDOWS_1252", ("users",)),  # the only file with letters outside ASCII
        ({"line_end": "\r\n"}, "CSV_CRLF", CSV_FILES),
    ],
)
def test_tolerated_forms_read_the_same_roster(tmp_path, run_oneroster, options, warning, files):
    drop = OneRosterDrop()
    ids = drop.basic()
    drop.rows["users"][1]["givenName"] = "Åsa"
    drop.rows["users"][1]["familyName"] = "Öberg; Ärlig"
    drop.write(drop_dir(tmp_path, "2026-12-01"), **options)
    n = run_oneroster("2026-12-01")
    assert n.users() == {
        f"or:{ids['teacher']}": "teacher",
        f"or:{ids['student']}": "student",
        f"or:{ids['student2']}": "student",
    }
    assert n.query("SELECT given_name, family_name FROM nightly.users WHERE user_id = ?", [f"or:{ids['student']}"]) == [
        ("Åsa", "Öberg; Ärlig")
    ]
    assert {(f, c) for f, c in warning_codes(n) if c.startswith("CSV_")} == {(f"{name}.csv", warning) for name in files}


def test_a_zip_drop_and_oneroster_11(tmp_path, run_oneroster):
    drop = OneRosterDrop(version="1.1")
    ids = drop.basic()
    drop.write(drop_dir(tmp_path, "2026-12-01"), as_zip=True)
    n = run_oneroster("2026-12-01")
    assert n.users() == {
        f"or:{ids['teacher']}": "teacher",
        f"or:{ids['student']}": "student",
        f"or:{ids['student2']}": "student",
    }
    assert len(n.memberships()) == 3
    assert n.query("SELECT organisation_name FROM nightly.schools") == [("Testby kommun",)]
    assert not any(p.name.endswith(".scratch") and any(p.iterdir()) for p in (tmp_path / "staging").rglob("*.scratch"))


# ── record stage, dates and bulk semantics ─────────────────────────────────────────────────────────────


@pytest.mark.slow
def test_end_dates_are_exclusive(tmp_path, run_oneroster):
    drop = OneRosterDrop()
    ids = drop.basic()
    drop.rows["enrollments"][1]["endDate"] = "2026-12-02"  # the student's last day in the class is 2026-12-01
    drop.rows["roles"][2]["endDate"] = "2026-12-02"  # and the other student's last day at the school
    drop.write(drop_dir(tmp_path, "2026-12-01"))
    on_last_day = run_oneroster("2026-12-01")
    assert (f"or:{ids['class']}", f"or:{ids['student']}", "student") in on_last_day.memberships()
    assert f"or:{ids['student2']}" in on_last_day.users()
    assert on_last_day.query(
        "SELECT end_date FROM nightly.memberships WHERE user_id = ?", [f"or:{ids['student']}"]
    ) == [(dt.date(2026, 12, 1),)]
    next_day = run_oneroster(
        "2026-12-02", rules={"max_removal_share": 1.0, "max_removal_share_week": 1.0}
    )  # (one of two students leaves)
    assert next_day.exclusion(f"or:{ids['class']}/or:{ids['student']}", "MEMBERSHIP_ENDED")["detail"] == (
        "the membership ended on 2026-12-01"
    )
    assert next_day.reasons(f"or:{ids['student2']}") == {"PLACEMENT_ENDED"}


@pytest.mark.slow
def test_a_class_is_active_when_one_of_its_terms_is(tmp_path, run_oneroster):
    drop = OneRosterDrop()
    school = drop.school()
    autumn = drop.session("HT26", "2026-08-17", "2026-12-23")
    spring = drop.session("VT27", "2027-01-11", "2027-06-11")
    klass = drop.klass(school, terms=[autumn, spring])
    drop.write(drop_dir(tmp_path, "2026-12-01"))
    assert run_oneroster("2026-12-01").groups() == {f"or:{klass}"}
    between = run_oneroster("2026-12-28", rules={"lookahead_days": 3})
    assert between.exclusion(f"or:{klass}", "GROUP_NOT_STARTED")["visible_from"] == dt.date(2027, 1, 8)
    assert run_oneroster("2027-02-01").query("SELECT start_date, end_date FROM nightly.groups") == [
        (dt.date(2027, 1, 11), dt.date(2027, 6, 10))
    ]


def test_disabled_and_to_be_deleted_records_are_excluded_with_their_own_reason(tmp_path, run_oneroster):
    drop = OneRosterDrop()
    ids = drop.basic()
    drop.rows["users"][1]["enabledUser"] = "FALSE"
    drop.rows["users"][2]["status"] = "tobedeleted"
    gone = drop.klass(ids["school"], "scheduled", "Matte", status="tobedeleted")
    drop.enrol(ids["class"], ids["teacher"], "teacher", ids["school"])
    drop.rows["enrollments"][-1]["status"] = "tobedeleted"
    drop.write(drop_dir(tmp_path, "2026-12-01"))
    n = run_oneroster("2026-12-01")
    assert n.exclusion(f"or:{ids['student']}", "PERSON_INACTIVE")["detail"] == (
        "enabledUser is false (the account is disabled in the source)"
    )
    assert n.reasons(f"or:{ids['student2']}") == {"TO_BE_DELETED"}
    assert n.reasons(f"or:{gone}") == {"TO_BE_DELETED"}
    # the teacher's other enrolment in the same class keeps the assignment
    assert (f"or:{ids['class']}", f"or:{ids['teacher']}", "teacher") in n.memberships()


def test_bad_codes_are_invalid_records_and_the_run_goes_on(tmp_path, run_oneroster):
    drop = OneRosterDrop()
    ids = drop.basic()
    drop.rows["roles"][1]["role"] = "studnet"
    drop.rows["enrollments"][0]["status"] = "deleted"
    drop.rows["roles"][2]["beginDate"] = "1/9/2026"
    drop.write(drop_dir(tmp_path, "2026-12-01"))
    n = run_oneroster("2026-12-01")
    assert n.exclusion(f"or:{ids['student']}", "INVALID_RECORD")["detail"] == "roles.role failed isin ('studnet')"
    assert n.exclusion(f"or:{ids['student2']}", "INVALID_RECORD")["detail"] == (
        "enrolments[1].start_date failed iso_date ('1/9/2026')"
    )
    assert n.exclusion(f"or:{ids['class']}/or:{ids['teacher']}", "INVALID_RECORD")["detail"] == (
        "enrollments.status failed isin ('deleted')"
    )


@pytest.mark.slow
def test_role_mapping_decides_who_teaches(tmp_path, run_oneroster):
    drop = OneRosterDrop()
    ids = drop.basic()
    aide = drop.user("aide", ids["school"], "Alex", "Assistent")
    principal = drop.user("principal", ids["school"], "Rut", "Rektor")
    drop.enrol(ids["class"], aide, "aide", ids["school"])
    drop.write(drop_dir(tmp_path, "2026-12-01"))
    n = run_oneroster("2026-12-01")
    assert n.users()[f"or:{aide}"] == "staff" and n.users()[f"or:{principal}"] == "staff"
    mapped = run_oneroster("2026-12-01", sources=[oneroster_source(oneroster_roles={"aide": "Lärare"})])
    assert mapped.users()[f"or:{aide}"] == "teacher"
    assert (f"or:{ids['class']}", f"or:{aide}", "teacher") in mapped.memberships()
