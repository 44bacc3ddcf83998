"""Validation files (skolon_pipeline.exports) and diagnostics.school_counts, on the demo night (2025-12-15)."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import re
import zipfile
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook
from python_calamine import CalamineWorkbook

from skolon_pipeline.demo import DEMO_NIGHT, PROTECTED_PERSON_IDS, drop_folder
from skolon_pipeline.exports.explanations import EXPLANATIONS, MASK, WARNINGS, explain
from skolon_pipeline.exports.validation_file import BOOK, SHEETS, ExportError, workbook_name, write_validation_files
from skolon_pipeline.exports.xlsx import WRAP_STYLE

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "data"
AUTHORITY = "lindby-kommun"

# The CSV files, for machines: English column codes, one row per exclusion (unchanged by the workbook for admins).
HEADERS = {
    "Users": [
        "user_id",
        "username",
        "given_name",
        "family_name",
        "role",
        "schools",
        "classes",
        "groups",
        "first_synced",
        "last_changed_by_sync",
    ],
    "Groups": [
        "group_id",
        "name",
        "school",
        "type",
        "students",
        "teachers",
        "start_date",
        "end_date",
        "first_synced",
        "last_changed_by_sync",
    ],
    "Memberships": ["group", "group_id", "school", "user_id", "username", "name", "role", "start_date", "end_date"],
    "Excluded": [
        "entity_type",
        "record_id",
        "person",
        "email",
        "role",
        "group",
        "school",
        "reason_code",
        "explanation",
        "detail",
        "visible_from",
    ],
}
SUMMARY_COUNTS = [
    "school",
    "school_unit_code",
    "school_id",
    "students",
    "teachers",
    "staff",
    "classes",
    "teaching_groups",
    "memberships",
    "excluded_persons",
    "excluded_groups",
    "excluded_memberships",
]


@pytest.fixture(scope="module")
def export(demo_warehouse, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    as_of, files = write_validation_files(demo_warehouse, out)
    assert as_of == DEMO_NIGHT
    assert [f.authority.slug for f in files] == [AUTHORITY]
    return files[0]


def q(warehouse: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def sheet_rows(f, sheet: str) -> list[dict]:
    """A CSV file's rows as dicts: empty → None, counts → int, ISO dates → datetime (as a workbook reader gives)."""

    def typed(column: str, value: str):
        if value == "":
            return None
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return dt.datetime.fromisoformat(value)
        if re.fullmatch(r"-?\d+", value) and column != "school_unit_code":
            return int(value)
        return value

    with f.csv[sheet].open(encoding="utf-8", newline="") as fh:
        return [{k: typed(k, v) for k, v in row.items()} for row in csv.DictReader(fh)]


@functools.cache
def _workbook_values(path: Path, mtime_ns: int) -> dict[str, list[list]]:
    """Every sheet's cell values, read by python-calamine (a reader independent of the writer)."""
    book = CalamineWorkbook.from_path(str(path))
    return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}


def values(path: Path, sheet: str) -> list[list]:
    return _workbook_values(path, path.stat().st_mtime_ns)[sheet]


def book_rows(path: Path, key: str, lang: str = "sv") -> list[dict]:
    """A workbook sheet's data rows as dicts by view column (Summary: the per-school table only)."""
    book = next(b for b in BOOK if b.csv_sheet == key)
    rows = values(path, book.name(lang))
    top = rows.index(list(book.headers(lang)))
    columns = [c[0] for c in book.columns]
    out = []
    for r in rows[top + 1 :]:
        if key == "Summary" and not any(r):
            break
        out.append({c: (None if v == "" else v) for c, v in zip(columns, r, strict=False)})
    return out


def demo_person(pid: str) -> dict:
    for page in sorted((drop_folder(DEMO_DATA) / "persons").glob("*.json")):
        for p in json.loads(page.read_text(encoding="utf-8"))["data"]:
            if p["id"] == pid:
                return p
    raise KeyError(pid)


# ─── explanations ───────────────────────────────────────────────────────────────────────────────────────


def test_every_reason_code_the_rules_emit_has_an_explanation():
    sql = (REPO / "skolon_pipeline" / "rules" / "roster.sql").read_text(encoding="utf-8")
    literals = set(re.findall(r"'([A-Z][A-Z_]{3,})'", sql))
    assert "EMPLOYMENT_NOT_STARTED" in literals and "UNKNOWN_GROUP" in literals
    missing = literals - set(EXPLANATIONS) - set(WARNINGS)
    assert not missing, f"reason codes without an explanation in exports/explanations.py: {sorted(missing)}"
    for code, e in EXPLANATIONS.items():
        assert all(part.strip() for part in e), code


def test_explanation_says_when_or_what_to_fix():
    assert explain("EMPLOYMENT_NOT_STARTED", dt.date(2026, 12, 12)) == (
        "Anställningen har inte börjat ännu — visas från 2026-12-12 / "
        "Employment has not started yet — visible from 2026-12-12"
    )
    assert explain("MISSING_EMAIL") == (
        "Skolans e-postadress saknas (en privat adress räcker inte) — lägg in en e-postadress av typen Skola elev "
        "eller Skola personal i elevregistret / The school e-mail address is missing (a private address is not "
        "enough) — add an address of type Skola elev or Skola personal in the registry"
    )
    assert explain("SOME_NEW_CODE") == "SOME_NEW_CODE / SOME_NEW_CODE"


# ─── diagnostics.school_counts ──────────────────────────────────────────────────────────────────────────


def test_school_counts_equal_counts_from_the_roster_tables(demo_warehouse):
    roles = dict(q(demo_warehouse, "SELECT user_id, role FROM roster.users"))
    expected: dict[str, Counter] = {s: Counter() for (s,) in q(demo_warehouse, "SELECT school_id FROM roster.schools")}
    seen = set()
    for user_id, school_id in q(demo_warehouse, "SELECT user_id, school_id FROM roster.school_affiliations"):
        if (user_id, school_id) not in seen:
            seen.add((user_id, school_id))
            expected[school_id][{"student": "students", "teacher": "teachers", "staff": "staff"}[roles[user_id]]] += 1
    school_of = {}
    for group_id, school_id, group_type in q(
        demo_warehouse, "SELECT group_id, school_id, group_type FROM roster.groups"
    ):
        school_of[group_id] = school_id
        expected[school_id]["classes" if group_type == "Klass" else "groups"] += 1
    for (group_id,) in q(demo_warehouse, "SELECT group_id FROM roster.memberships"):
        expected[school_of[group_id]]["memberships"] += 1
    for entity, _record_id, school_id in set(
        q(demo_warehouse, "SELECT entity_type, record_id, school_id FROM diagnostics.exclusions")
    ):
        if school_id in expected:
            expected[school_id][f"excluded_{entity}s"] += 1

    rows = q(
        demo_warehouse,
        """SELECT school_id, students, teachers, staff, classes, groups, memberships,
                                       excluded_persons, excluded_groups, excluded_memberships, as_of
                                FROM diagnostics.school_counts""",
    )
    columns = [
        "students",
        "teachers",
        "staff",
        "classes",
        "groups",
        "memberships",
        "excluded_persons",
        "excluded_groups",
        "excluded_memberships",
    ]
    assert {r[0]: dict(zip(columns, r[1:10], strict=True)) for r in rows} == {
        s: {c: counts[c] for c in columns} for s, counts in expected.items()
    }
    assert {r[10] for r in rows} == {DEMO_NIGHT}
    assert all(r[1] > 100 and r[4] > 0 and r[7] > 0 for r in rows)


# ─── the workbook, for admins ───────────────────────────────────────────────────────────────────────────

SV_SHEETS = ["Sammanfattning", "Användare", "Grupper", "Medlemskap", "Ej synkade"]
EN_SHEETS = ["Summary", "Users", "Groups", "Memberships", "Not synced"]


def _xml(path: Path, part: str) -> str:
    with zipfile.ZipFile(path) as zf:
        return zf.read(part).decode("utf-8")


def test_workbook_is_named_for_authority_and_night_with_swedish_sheets_and_headers(export):
    assert export.xlsx == export.folder / f"valideringsfil_{AUTHORITY}_{DEMO_NIGHT}.xlsx"
    assert export.xlsx.name == workbook_name(AUTHORITY, DEMO_NIGHT)
    assert export.folder.parent.name == DEMO_NIGHT.isoformat()
    assert len(list(export.folder.iterdir())) == 6  # the workbook and a CSV per sheet (modes: test_data_protection)
    book = CalamineWorkbook.from_path(str(export.xlsx))
    assert book.sheet_names == SV_SHEETS
    users = values(export.xlsx, "Användare")
    assert users[0] == [
        "Förnamn",
        "Efternamn",
        "Användarnamn (e-post)",
        "Roll",
        "Skolor",
        "Klasser",
        "Grupper",
        "Först synkad",
        "Senast ändrad av synken",
        "Rollkod",
        "Id",
    ]
    roles = {r[3]: r[9] for r in users[1:]}
    assert roles == {"Elev": "student", "Lärare": "teacher", "Personal": "staff"}  # words first, codes later
    assert values(export.xlsx, "Grupper")[0][:3] == ["Namn", "Skola", "Typ"]
    assert values(export.xlsx, "Medlemskap")[0][:5] == ["Grupp", "Skola", "Namn", "Användarnamn (e-post)", "Roll"]
    assert export.rows["Users"] == len(users) - 1 > 500
    # the same workbook opens in openpyxl too (frozen header row, autofilter, bold header)
    ws = load_workbook(export.xlsx)["Användare"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:K{ws.max_row}" and ws[1][0].font.b


def test_excluded_sheet_puts_name_role_school_and_explanation_first_and_ids_last(export):
    rows = values(export.xlsx, "Ej synkade")
    assert rows[0][:6] == ["Namn", "Roll", "Skola", "Vad är fel och vad ska göras", "Visas från", "Väntar också"]
    assert rows[0][-2:] == ["Orsakskod", "Id"]
    admin = next(r for r in book_rows(export.xlsx, "Excluded") if r["reason_codes"] == "EMPLOYMENT_NOT_STARTED")
    assert (admin["role_word"], admin["school"], admin["visible_from"]) == (
        "Personal",
        "Lindby gymnasium",
        dt.date(2026, 2, 1),
    )
    assert admin["explanation"] == "Anställningen har inte börjat ännu — visas från 2026-02-01"
    assert admin["entity"] == "Person" and admin["name"] and admin["record_id"]


def test_one_row_per_held_back_person_with_the_memberships_waiting_for_them(export, demo_warehouse):
    rows = book_rows(export.xlsx, "Excluded")
    persons = [r for r in rows if r["entity"] == "Person"]
    held = q(demo_warehouse, "SELECT DISTINCT record_id FROM diagnostics.exclusions WHERE entity_type = 'person'")
    assert sorted(r["record_id"] for r in persons) == sorted(r for (r,) in held)  # each person once
    invalid = next(r for r in persons if r["reason_codes"] == "INVALID_EMAIL")
    waiting = q(
        demo_warehouse,
        """SELECT count(*) FROM diagnostics.exclusions
                                   WHERE person_id = ? AND reason_code = 'MEMBER_EXCLUDED'""",
        [invalid["record_id"]],
    )
    assert invalid["also_held"] == f"och {waiting[0][0]} gruppmedlemskap" and waiting[0][0] >= 5
    assert invalid["email"] == "anna.berg@@elev.lindby.se"
    # no row for a membership held back only because its person is; one for a membership's own reason
    only_person = q(
        demo_warehouse,
        """SELECT record_id FROM diagnostics.exclusions WHERE entity_type = 'membership'
                                       GROUP BY 1 HAVING bool_and(reason_code = 'MEMBER_EXCLUDED')""",
    )
    ids = {r["record_id"] for r in rows}
    assert only_person and not ids & {r for (r,) in only_person}
    ended = q(demo_warehouse, "SELECT record_id FROM diagnostics.exclusions WHERE reason_code = 'MEMBERSHIP_ENDED'")
    assert {r for (r,) in ended} <= ids
    all_rows = q(demo_warehouse, "SELECT count(*) FROM diagnostics.exclusions")[0][0]
    assert len(rows) < all_rows / 3  # 34 rows instead of 136


def test_long_text_wraps_and_every_sheet_prints_landscape_fitted_to_width(export):
    sheets = {n: f"xl/worksheets/sheet{i}.xml" for i, n in enumerate(SV_SHEETS, start=1)}
    styles = _xml(export.xlsx, "xl/styles.xml")
    assert '<alignment wrapText="1" vertical="top"/>' in styles
    excluded = _xml(export.xlsx, sheets["Ej synkade"])
    assert excluded.count(f'<c t="inlineStr" s="{WRAP_STYLE}">') >= 3 * 30  # name, explanation and detail wrap
    workbook = _xml(export.xlsx, "xl/workbook.xml")
    for n, (name, part) in enumerate(sheets.items()):
        xml = _xml(export.xlsx, part)
        assert '<pageSetUpPr fitToPage="1"/>' in xml and 'orientation="landscape"' in xml and 'fitToWidth="1"' in xml
        assert ('fitToHeight="1"' in xml) == (name == "Sammanfattning"), name  # the Summary on one page
        top = values(export.xlsx, name).index(list(BOOK[n].headers("sv"))) + 1
        assert (
            f'<definedName name="_xlnm.Print_Titles" localSheetId="{n}">\'{name}\'!${top}:${top}</definedName>'
            in workbook
        )
    ws = load_workbook(export.xlsx)["Ej synkade"]
    assert ws.page_setup.orientation == "landscape" and ws.print_title_rows == "$1:$1"


def test_summary_starts_with_authority_night_drop_dates_and_when_it_was_made(export):
    rows = values(export.xlsx, "Sammanfattning")
    assert rows[0][0] == "Valideringsfil — Lindby kommun"
    assert rows[1][:2] == ["Huvudman", "Lindby kommun"]
    assert rows[2][:2] == ["Natt", DEMO_NIGHT]
    assert rows[3][:2] == ["Källa lindby", "export från 2025-12-14 (1 dag gammal)"]
    assert rows[4][0] == "Skapad" and rows[4][1].startswith(dt.date.today().isoformat()[:4])
    assert rows[5][:2] == ["Källor", "lindby"]
    schools = book_rows(export.xlsx, "Summary")
    assert [r["school"] for r in schools][-1] == "utan skola"
    reasons = rows[rows.index(["Orsak", "Antal poster", "Kod"] + [""] * 9) + 1 :]
    by_code = {r[2]: (r[0], r[1]) for r in reasons if r[2]}
    assert by_code["EMPLOYMENT_NOT_STARTED"] == ("Anställningen har inte börjat ännu", 1)
    assert sum(r["excluded_persons"] for r in schools) == sum(
        r["excluded_persons"] for r in sheet_rows(export, "Summary")
    )


def test_english_workbook(demo_warehouse, tmp_path):
    _, (f,) = write_validation_files(demo_warehouse, tmp_path, lang="en")
    assert CalamineWorkbook.from_path(str(f.xlsx)).sheet_names == EN_SHEETS
    assert values(f.xlsx, "Users")[0][:4] == ["Given name", "Family name", "Username (e-mail)", "Role"]
    assert {r["role_word"] for r in book_rows(f.xlsx, "Users", "en")} == {"Student", "Teacher", "Staff"}
    admin = next(r for r in book_rows(f.xlsx, "Excluded", "en") if r["reason_codes"] == "EMPLOYMENT_NOT_STARTED")
    assert admin["explanation"] == "Employment has not started yet — visible from 2026-02-01"
    assert values(f.xlsx, "Summary")[3][:2] == ["Source lindby", "drop of 2025-12-14 (1 day old)"]
    invalid = next(r for r in book_rows(f.xlsx, "Excluded", "en") if r["reason_codes"] == "INVALID_EMAIL")
    assert invalid["also_held"].startswith("and ") and invalid["also_held"].endswith(" group memberships")


def test_a_stale_drop_is_on_the_summary(run_registry, tmp_path):
    from skolon_pipeline_tests.registry import Registry

    reg = Registry()
    school = reg.school()
    reg.group(school, members=[reg.student(school) for _ in range(2)])
    night_ = run_registry(reg, as_of="2026-11-11", drop_date="2026-11-01")
    _, (f,) = write_validation_files(night_.warehouse, tmp_path / "out")
    (line,) = [r for r in values(f.xlsx, "Sammanfattning") if r[0] == "Källa testby"]
    assert line[1].startswith("export från 2026-11-01 (10 dagar gammal) — VARNING: äldre än 3 dagar")


# ─── the CSV files, for machines ────────────────────────────────────────────────────────────────────────


def test_csv_files_keep_their_columns_and_every_row(export, demo_warehouse):
    for sheet, header in HEADERS.items():
        with export.csv[sheet].open(encoding="utf-8", newline="") as fh:
            assert next(csv.reader(fh)) == header, sheet
    summary_header = list(sheet_rows(export, "Summary")[0])
    assert summary_header[: len(SUMMARY_COUNTS)] == SUMMARY_COUNTS
    assert summary_header[len(SUMMARY_COUNTS) :] == list(EXPLANATIONS)
    for sheet, (_, name) in SHEETS.items():
        raw = export.csv[sheet].read_bytes()
        assert export.csv[sheet] == export.folder / name and not raw.startswith(b"\xef\xbb\xbf")
    # the workbook shows the same users, groups and memberships as the CSV files
    assert len(sheet_rows(export, "Users")) == export.rows["Users"]
    assert len(sheet_rows(export, "Memberships")) == export.rows["Memberships"]
    assert sorted(r["user_id"] for r in sheet_rows(export, "Users")) == sorted(
        r["user_id"] for r in book_rows(export.xlsx, "Users")
    )


def test_summary_counts_every_school_and_every_exclusion(export, demo_warehouse):
    rows = sheet_rows(export, "Summary")
    counts = {
        r[0]: r[1:]
        for r in q(
            demo_warehouse,
            """SELECT school_id, students, teachers, staff, memberships
                                                          FROM diagnostics.school_counts""",
        )
    }
    for row in rows[:-1]:
        assert (row["students"], row["teachers"], row["staff"], row["memberships"]) == counts[row["school_id"]]
    assert rows[-1]["school"] == "utan skola / no school"  # NO_SCHOOL_LINK, UNKNOWN_SCHOOL, GROUP_UNKNOWN_SCHOOL ...
    assert rows[-1]["NO_SCHOOL_LINK"] == 1
    per_code = Counter()
    for code, n in q(
        demo_warehouse,
        """SELECT reason_code, count(DISTINCT record_id) FROM diagnostics.exclusions
                                        GROUP BY 1""",
    ):
        per_code[code] = n
    assert {code: sum(r[code] for r in rows) for code in EXPLANATIONS} == {c: per_code[c] for c in EXPLANATIONS}
    assert (
        sum(r["excluded_persons"] for r in rows)
        == q(
            demo_warehouse, "SELECT count(DISTINCT record_id) FROM diagnostics.exclusions WHERE entity_type = 'person'"
        )[0][0]
    )
    protected_memberships = q(
        demo_warehouse,
        f"""SELECT count(*) FROM diagnostics.exclusions
        WHERE entity_type = 'membership' AND list_contains({list(PROTECTED_PERSON_IDS)!r}, person_id)""",
    )[0][0]
    assert (
        len(sheet_rows(export, "Excluded"))
        == q(demo_warehouse, "SELECT count(*) FROM diagnostics.exclusions")[0][0] - protected_memberships
    )


def test_a_known_users_row(export, demo_warehouse):
    user_id, email, given, family = q(
        demo_warehouse,
        """
        SELECT u.user_id, u.email, u.given_name, u.family_name FROM roster.users u
        WHERE u.role = 'student' AND NOT u.protected_identity ORDER BY u.user_id LIMIT 1""",
    )[0]
    classes = [
        g
        for (g,) in q(
            demo_warehouse,
            """SELECT g.name FROM roster.memberships m JOIN roster.groups g USING (group_id)
                                                 WHERE m.user_id = ? AND g.group_type = 'Klass'""",
            [user_id],
        )
    ]
    school = q(
        demo_warehouse,
        """SELECT s.name FROM roster.school_affiliations a JOIN roster.schools s USING (school_id)
                                  WHERE a.user_id = ?""",
        [user_id],
    )[0][0]
    for row in (
        next(r for r in sheet_rows(export, "Users") if r["user_id"] == user_id),
        next(r for r in book_rows(export.xlsx, "Users") if r["user_id"] == user_id),
    ):
        assert row["username"] == email and "@" in email
        assert (row["given_name"], row["family_name"], row["role"]) == (given, family, "student")
        assert row["schools"] == school
        assert row["classes"] == ", ".join(sorted(classes)) and len(classes) == 1
        assert row["groups"].count(",") >= 1


def test_a_known_exclusion_says_what_and_when(export):
    admin = demo_person_by_reason(export, "EMPLOYMENT_NOT_STARTED")
    assert admin["person"] and admin["role"] == "staff" and admin["school"] == "Lindby gymnasium"
    assert admin["visible_from"] == dt.datetime(2026, 2, 1)
    assert admin["explanation"] == (
        "Anställningen har inte börjat ännu — visas från 2026-02-01 / "
        "Employment has not started yet — visible from 2026-02-01"
    )
    missing = demo_person_by_reason(export, "MISSING_FAMILY_NAME")
    assert missing["visible_from"] is None
    assert missing["explanation"].startswith("Efternamn saknas — fyll i efternamnet i elevregistret / ")
    group = demo_person_by_reason(export, "GROUP_NOT_STARTED")
    assert group["entity_type"] == "group" and group["group"] and group["person"] is None


def demo_person_by_reason(export, code: str) -> dict:
    rows = [r for r in sheet_rows(export, "Excluded") if r["reason_code"] == code]
    assert len(rows) == 1, rows
    return rows[0]


def _everything(f) -> str:
    text = "\n".join(p.read_text(encoding="utf-8") for p in f.csv.values())
    return text + "\n".join(
        str(v) for rows in _workbook_values(f.xlsx, f.xlsx.stat().st_mtime_ns).values() for row in rows for v in row
    )


def test_protected_identity_is_masked_everywhere(export, demo_warehouse):
    assert len(PROTECTED_PERSON_IDS) == 5
    for users in (
        {r["user_id"]: r for r in sheet_rows(export, "Users")},
        {r["user_id"]: r for r in book_rows(export.xlsx, "Users")},
    ):
        for pid in PROTECTED_PERSON_IDS:
            row = users[pid]
            assert (row["username"], row["given_name"], row["family_name"]) == (MASK, MASK, MASK)
            assert row["role"] == "student" and row["schools"]
            assert row["classes"] is None and row["groups"] is None
    emails, names = [], {}
    for pid in PROTECTED_PERSON_IDS:
        email, given, family = q(
            demo_warehouse, "SELECT email, given_name, family_name FROM roster.users WHERE user_id = ?", [pid]
        )[0]
        emails.append(email)
        names[pid] = (given, family)
    # no Memberships row at all (their class and groups could identify them), but counted in the groups
    for memberships in (sheet_rows(export, "Memberships"), book_rows(export.xlsx, "Memberships")):
        assert not any(pid in (r["user_id"] or "") for r in memberships for pid in PROTECTED_PERSON_IDS)
        assert not any(MASK in (r["name"] or "") for r in memberships)
    in_roster = dict(
        q(
            demo_warehouse,
            """SELECT group_id, count(*) FROM roster.memberships
                                          WHERE role = 'student' GROUP BY 1""",
        )
    )
    assert all(r["students"] == in_roster.get(r["group_id"], 0) for r in sheet_rows(export, "Groups"))
    assert all(r["students"] == in_roster.get(r["group_id"], 0) for r in book_rows(export.xlsx, "Groups"))
    shown = Counter(r["group_id"] for r in sheet_rows(export, "Memberships") if r["role"] == "student")
    hidden = q(
        demo_warehouse,
        f"""SELECT count(*) FROM roster.memberships
                                    WHERE list_contains({list(PROTECTED_PERSON_IDS)!r}, user_id)""",
    )[0][0]
    assert hidden >= 5 * 4 and sum(in_roster.values()) - sum(shown.values()) == hidden
    everything = _everything(export)
    for email in emails:
        assert email not in everything
    # (names are not unique: another person may share one, so look at the rows that name the protected id)
    rows = [r for path in export.csv.values() for r in csv.reader(path.open(encoding="utf-8"))]
    rows += [row for sheet in _workbook_values(export.xlsx, export.xlsx.stat().st_mtime_ns).values() for row in sheet]
    for row in rows:
        for pid, (given, family) in names.items():
            if any(pid in str(v) for v in row):
                assert given not in row and family not in row and not any(f"{given} {family}" in str(v) for v in row)


def test_no_civic_number_in_any_export(export):
    civic = [demo_person(pid)["civicNo"]["value"] for pid in PROTECTED_PERSON_IDS]
    for page in sorted((drop_folder(DEMO_DATA) / "persons").glob("*.json")):
        civic += [
            p["civicNo"]["value"] for p in json.loads(page.read_text(encoding="utf-8"))["data"] if p.get("civicNo")
        ]
    assert len(civic) > 500
    everything = _everything(export)
    assert not [c for c in civic if c in everything or c.replace("-", "")[2:] in everything]


def test_one_school_only(demo_warehouse, tmp_path):
    code, school_id, name = q(
        demo_warehouse, "SELECT school_unit_code, school_id, name FROM roster.schools WHERE name = 'Norrby skola'"
    )[0]
    _, files = write_validation_files(demo_warehouse, tmp_path, as_of=DEMO_NIGHT, school=code)
    (f,) = files
    assert f.folder == tmp_path / DEMO_NIGHT.isoformat() / AUTHORITY / f"norrby-skola-{code}"
    assert f.xlsx.name == f"valideringsfil_{AUTHORITY}_norrby-skola-{code}_{DEMO_NIGHT}.xlsx"
    assert values(f.xlsx, "Sammanfattning")[3][:2] == ["Skola", "Norrby skola"]
    summary = sheet_rows(f, "Summary")
    assert [r["school_id"] for r in summary] == [school_id]
    assert [r["school_id"] for r in book_rows(f.xlsx, "Summary")] == [school_id]
    assert {r["school"] for r in sheet_rows(f, "Groups")} == {name}
    assert all(name in r["schools"] for r in sheet_rows(f, "Users"))
    excluded = sheet_rows(f, "Excluded")
    assert excluded and {r["school"] for r in excluded} == {name}
    assert {r["school"] for r in book_rows(f.xlsx, "Excluded")} == {name}
    assert len({r["record_id"] for r in excluded if r["entity_type"] == "person"}) == summary[0]["excluded_persons"]
    assert sum(1 for r in sheet_rows(f, "Users")) == sum(summary[0][k] for k in ("students", "teachers", "staff"))
    # by school id too, and the same file
    _, (by_id,) = write_validation_files(demo_warehouse, tmp_path / "by-id", school=school_id.upper())
    assert by_id.rows == f.rows


def test_errors_name_what_is_wrong(demo_warehouse, tmp_path):
    with pytest.raises(ExportError, match="no school unit with code or id '12345678'"):
        write_validation_files(demo_warehouse, tmp_path, school="12345678")
    with pytest.raises(ExportError, match="night 2025-12-01 is not published"):
        write_validation_files(demo_warehouse, tmp_path, as_of=dt.date(2025, 12, 1))
    with pytest.raises(ExportError, match="no warehouse"):
        write_validation_files(tmp_path / "none.duckdb", tmp_path)
    with pytest.raises(ExportError, match="language 'de'"):
        write_validation_files(demo_warehouse, tmp_path, lang="de")
    with pytest.raises(ExportError, match="not a safe file name part"):
        workbook_name("../x", DEMO_NIGHT)


def test_cli_export_writes_the_files_and_says_where(demo_warehouse, tmp_path, capsys):
    from skolon_pipeline import cli

    code = cli.main(
        ["export", "--warehouse", str(demo_warehouse), "--export-dir", str(tmp_path / "out"), "--lang", "en"]
    )
    out = capsys.readouterr().out
    xlsx_path = tmp_path / "out" / DEMO_NIGHT.isoformat() / AUTHORITY / workbook_name(AUTHORITY, DEMO_NIGHT)
    assert code == 0 and xlsx_path.is_file() and str(xlsx_path) in out
    assert CalamineWorkbook.from_path(str(xlsx_path)).sheet_names == EN_SHEETS
    assert "Lindbyskolan: 143 students" in out
    assert (
        cli.main(
            ["export", "--warehouse", str(demo_warehouse), "--export-dir", str(tmp_path / "out"), "--school", "nope"]
        )
        == 1
    )
    assert "no school unit with code or id 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(("school", "max_rows"), [(None, 1000), ("Norrby skola", 200)])
def test_a_sheet_longer_than_excel_allows_continues_on_numbered_sheets(demo_warehouse, tmp_path, school, max_rows):
    """Each part of a long sheet is cut by the sheet's row positions, also when one school's rows are a few of them."""
    if school:
        (school,) = q(demo_warehouse, "SELECT school_unit_code FROM roster.schools WHERE name = ?", [school])[0]
    _, (f,) = write_validation_files(demo_warehouse, tmp_path, school=school, max_sheet_rows=max_rows)
    total = f.rows["Memberships"]
    assert total > 2 * max_rows
    parts = ["Medlemskap"] + [f"Medlemskap ({n})" for n in range(2, (total - 1) // (max_rows - 1) + 2)]
    assert CalamineWorkbook.from_path(str(f.xlsx)).sheet_names[3:-1] == parts
    rows = [r for name in parts for r in values(f.xlsx, name)[1:]]
    csv_rows = f.csv["Memberships"].read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == total == len(csv_rows)  # every row, in the workbook as in the CSV
    # each membership once, in the same order as the CSV (group id and user id are the last two columns)
    csv_keys = [(r["group_id"], r["user_id"]) for r in csv.DictReader(f.csv["Memberships"].open(encoding="utf-8"))]
    assert [tuple(r[-2:]) for r in rows] == csv_keys and len(set(csv_keys)) == total
    assert all(len(values(f.xlsx, name)) <= max_rows for name in parts)
    assert len(book_rows(f.xlsx, "Summary")) == (1 if school else 4)  # short sheets whole


@pytest.mark.parametrize("school", [None, "s3"])
def test_a_long_sheet_keeps_its_order_through_the_per_file_filter(school):
    """A sheet's rows leave the filter for one authority (and school) in the sheet's order at any size: a filter
    against a one-row table once became a hash join that returned half a million rows out of order (a split
    Memberships sheet then repeated some rows and lost others)."""
    from skolon_pipeline.exports import validation_file

    n = 500_000
    with duckdb.connect() as con:
        con.execute(
            "CREATE TEMP TABLE sheet_long AS SELECT 'a' AS _authority, "
            "['s' || (i % 7)] AS _schools, i FROM range(?) r(i) ORDER BY i",
            [n],
        )
        validation_file._filter(con, "a", school)
        got = [i for (i,) in con.execute(validation_file._sheet_query("sheet_long")).fetchall()]
    expected = [i for i in range(n) if school is None or i % 7 == 3]
    assert got == expected


def test_a_shared_email_never_links_a_protected_person(run_registry, tmp_path):
    """Issue 18 item 12: a shared address says only what is true of the non-protected records: the other
    non-protected person sharing it is named, the protected one is neither named nor hinted at."""
    from skolon_pipeline.explain import find, render
    from skolon_pipeline_tests.registry import Registry

    reg = Registry()
    school = reg.school()
    shared = [{"value": "kim.lund@skola.test", "type": "Skola elev"}]
    open_person = reg.student(school, given="Kim", family="Lund", emails=shared)
    other = reg.student(school, given="Kim", family="Lundin", emails=shared)
    hidden = reg.student(school, given="Kim", family="Lund", emails=shared, securityMarking="Skyddad folkbokföring")
    alone = [{"value": "sam.ek@skola.test", "type": "Skola elev"}]
    lonely = reg.student(school, given="Sam", family="Ek", emails=alone)
    reg.student(school, emails=alone, securityMarking="Sekretessmarkering")
    night_ = run_registry(reg)
    assert night_.reasons(open_person["id"]) == night_.reasons(hidden["id"]) == {"DUPLICATE_EMAIL"}
    assert hidden["id"] in night_.exclusion(open_person["id"], "DUPLICATE_EMAIL")["detail"]  # the warehouse knows
    _, (f,) = write_validation_files(night_.warehouse, tmp_path / "out")
    for rows in (
        {r["record_id"]: r for r in sheet_rows(f, "Excluded")},
        {r["record_id"]: r for r in book_rows(f.xlsx, "Excluded")},
    ):
        assert rows[open_person["id"]]["detail"] == f"the same school e-mail is used by {other['id']}"
        assert rows[lonely["id"]]["detail"] == "the same school e-mail is used by another record in the registry"
        assert rows[hidden["id"]]["detail"] is None
    assert "protected" not in _everything(f).lower()
    csv_hidden = next(r for r in sheet_rows(f, "Excluded") if r["record_id"] == hidden["id"])
    assert (csv_hidden["person"], csv_hidden["email"]) == (MASK, MASK)
    for query in (open_person["id"], "kim lund", "kim.lund@skola.test", "sam ek"):
        answer = find(night_.warehouse, query)
        text = "\n".join(render(answer))
        assert hidden["id"] not in text and "protected" not in text.lower() and "skyddad" not in text.lower(), query
        assert hidden["id"] not in [x.id for x in answer.found]


def test_a_long_csv_file_keeps_the_sheet_order(tmp_path):
    """The CSV file of a long sheet has its rows in the sheet's order, every text column through the formula
    check: DuckDB writes a COPY in order only while the query stays a plain scan and projection (a check against a
    constant list, `list_contains([...], ascii(x))`, was planned as a join per column, and 1.3 million
    memberships came out of it in another order)."""
    from skolon_pipeline.exports import validation_file

    n = 300_000
    with duckdb.connect() as con:
        con.execute(
            "CREATE TEMP TABLE sheet_long AS SELECT 'a' AS _authority, ['s'] AS _schools, i, "
            "CASE WHEN i % 1000 = 0 THEN '=cmd' || i ELSE 'name ' || (i * 7919 % 100003) END AS name, "
            "'u' || i || '@skola.test' AS username, md5(i::VARCHAR) AS user_id FROM range(?) r(i) ORDER BY i",
            [n],
        )
        validation_file._filter(con, "a", None)
        validation_file._write_csv(con, "sheet_long", tmp_path / "long.csv")
    rows = list(csv.DictReader((tmp_path / "long.csv").open(encoding="utf-8")))
    assert [int(r["i"]) for r in rows] == list(range(n))
    assert rows[1000]["name"] == "'=cmd1000" and rows[1]["name"] == "name 7919"
