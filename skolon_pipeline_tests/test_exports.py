"""Validation files (skolon_pipeline.exports) and diagnostics.school_counts, on the demo night (2025-12-15)."""

from __future__ import annotations

import csv
import functools
import datetime as dt
import json
import re
import stat
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook

from skolon_pipeline.demo import DEMO_NIGHT, PROTECTED_PERSON_IDS, drop_folder
from skolon_pipeline.exports.explanations import EXPLANATIONS, MASK, WARNINGS, explain
from skolon_pipeline.exports.validation_file import SHEETS, XLSX_NAME, ExportError, write_validation_files

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "data"
AUTHORITY = "lindby-kommun"

HEADERS = {
    "Users": ["user_id", "username", "given_name", "family_name", "role", "schools", "classes", "groups",
              "first_synced", "last_changed_by_sync"],
    "Groups": ["group_id", "name", "school", "type", "students", "teachers", "start_date", "end_date",
               "first_synced", "last_changed_by_sync"],
    "Memberships": ["group", "group_id", "school", "user_id", "username", "name", "role", "start_date", "end_date"],
    "Excluded": ["entity_type", "record_id", "person", "email", "role", "group", "school", "reason_code",
                 "explanation", "detail", "visible_from"],
}
SUMMARY_COUNTS = ["school", "school_unit_code", "school_id", "students", "teachers", "staff", "classes",
                  "teaching_groups", "memberships", "excluded_persons", "excluded_groups", "excluded_memberships"]


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


def sheet_rows(path: Path, sheet: str) -> list[dict]:
    rows = values(path, sheet)
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


@functools.cache
def _workbook_values(path: Path, mtime_ns: int) -> dict[str, list[list]]:
    out = {}
    for ws in load_workbook(path, read_only=True):
        rows = [list(r) for r in ws.iter_rows(values_only=True)]
        out[ws.title] = [r + [None] * (len(rows[0]) - len(r)) for r in rows]
    return out


def values(path: Path, sheet: str) -> list[list]:
    """A sheet's cell values, rows padded to the header's width (empty trailing cells are not stored)."""
    return _workbook_values(path, path.stat().st_mtime_ns)[sheet]


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
        "Employment has not started yet — visible from 2026-12-12")
    assert explain("MISSING_EMAIL") == (
        "Skolans e-postadress saknas (en privat adress räcker inte) — lägg in en e-postadress av typen Skola elev "
        "eller Skola personal i elevregistret / The school e-mail address is missing (a private address is not "
        "enough) — add an address of type Skola elev or Skola personal in the registry")
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
    for group_id, school_id, group_type in q(demo_warehouse, "SELECT group_id, school_id, group_type FROM roster.groups"):
        school_of[group_id] = school_id
        expected[school_id]["classes" if group_type == "Klass" else "groups"] += 1
    for (group_id,) in q(demo_warehouse, "SELECT group_id FROM roster.memberships"):
        expected[school_of[group_id]]["memberships"] += 1
    for entity, record_id, school_id in set(
        q(demo_warehouse, "SELECT entity_type, record_id, school_id FROM diagnostics.exclusions")
    ):
        if school_id in expected:
            expected[school_id][f"excluded_{entity}s"] += 1

    rows = q(demo_warehouse, """SELECT school_id, students, teachers, staff, classes, groups, memberships,
                                       excluded_persons, excluded_groups, excluded_memberships, as_of
                                FROM diagnostics.school_counts""")
    columns = ["students", "teachers", "staff", "classes", "groups", "memberships", "excluded_persons",
               "excluded_groups", "excluded_memberships"]
    assert {r[0]: dict(zip(columns, r[1:10], strict=True)) for r in rows} == {
        s: {c: counts[c] for c in columns} for s, counts in expected.items()
    }
    assert {r[10] for r in rows} == {DEMO_NIGHT}
    assert all(r[1] > 100 and r[4] > 0 and r[7] > 0 for r in rows)


# ─── the validation file ────────────────────────────────────────────────────────────────────────────────

def test_workbook_has_the_sheets_headers_and_excel_niceties(export):
    assert export.xlsx == export.folder / XLSX_NAME
    assert export.folder.parent.name == DEMO_NIGHT.isoformat()
    wb = load_workbook(export.xlsx)
    assert wb.sheetnames == ["Summary", "Users", "Groups", "Memberships", "Excluded"]
    for sheet, header in HEADERS.items():
        ws = wb[sheet]
        assert [c.value for c in ws[1]] == header
        assert ws.freeze_panes == "A2"
        assert ws.auto_filter.ref == f"A1:{ws.cell(1, len(header)).column_letter}{ws.max_row}"
        assert ws[1][0].font.b
        assert all(8 <= ws.column_dimensions[c.column_letter].width <= 62 for c in ws[1])
    summary_header = [c.value for c in wb["Summary"][1]]
    assert summary_header[: len(SUMMARY_COUNTS)] == SUMMARY_COUNTS
    assert summary_header[len(SUMMARY_COUNTS):] == list(EXPLANATIONS)
    groups = wb["Groups"]
    assert groups["G2"].is_date and isinstance(groups["G2"].value, dt.datetime)
    assert export.rows["Users"] == wb["Users"].max_row - 1 > 500


def test_summary_counts_every_school_and_every_exclusion(export, demo_warehouse):
    rows = sheet_rows(export.xlsx, "Summary")
    counts = {r[0]: r[1:] for r in q(demo_warehouse, """SELECT school_id, students, teachers, staff, memberships
                                                          FROM diagnostics.school_counts""")}
    for row in rows[:-1]:
        assert (row["students"], row["teachers"], row["staff"], row["memberships"]) == counts[row["school_id"]]
    assert rows[-1]["school"] == "utan skola / no school"  # NO_SCHOOL_LINK, UNKNOWN_SCHOOL, GROUP_UNKNOWN_SCHOOL ...
    assert rows[-1]["NO_SCHOOL_LINK"] == 1
    # every held-back record is in the authority's file, exactly once per reason
    per_code = Counter()
    for code, n in q(demo_warehouse, """SELECT reason_code, count(DISTINCT record_id) FROM diagnostics.exclusions
                                        GROUP BY 1"""):
        per_code[code] = n
    assert {code: sum(r[code] for r in rows) for code in EXPLANATIONS} == {c: per_code[c] for c in EXPLANATIONS}
    assert sum(r["excluded_persons"] for r in rows) == q(
        demo_warehouse, "SELECT count(DISTINCT record_id) FROM diagnostics.exclusions WHERE entity_type = 'person'")[0][0]
    assert len(sheet_rows(export.xlsx, "Excluded")) == q(demo_warehouse, "SELECT count(*) FROM diagnostics.exclusions")[0][0]


def test_a_known_users_row(export, demo_warehouse):
    user_id, email, given, family = q(demo_warehouse, """
        SELECT u.user_id, u.email, u.given_name, u.family_name FROM roster.users u
        WHERE u.role = 'student' AND NOT u.protected_identity ORDER BY u.user_id LIMIT 1""")[0]
    classes = [g for (g,) in q(demo_warehouse, """SELECT g.name FROM roster.memberships m JOIN roster.groups g USING (group_id)
                                                 WHERE m.user_id = ? AND g.group_type = 'Klass'""", [user_id])]
    school = q(demo_warehouse, """SELECT s.name FROM roster.school_affiliations a JOIN roster.schools s USING (school_id)
                                  WHERE a.user_id = ?""", [user_id])[0][0]
    row = next(r for r in sheet_rows(export.xlsx, "Users") if r["user_id"] == user_id)
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
        "Employment has not started yet — visible from 2026-02-01")
    missing = demo_person_by_reason(export, "MISSING_FAMILY_NAME")
    assert missing["visible_from"] is None
    assert missing["explanation"].startswith("Efternamn saknas — fyll i efternamnet i elevregistret / ")
    group = demo_person_by_reason(export, "GROUP_NOT_STARTED")
    assert group["entity_type"] == "group" and group["group"] and group["person"] is None


def demo_person_by_reason(export, code: str) -> dict:
    rows = [r for r in sheet_rows(export.xlsx, "Excluded") if r["reason_code"] == code]
    assert len(rows) == 1, rows
    return rows[0]


def test_protected_identity_is_masked_everywhere(export, demo_warehouse):
    assert len(PROTECTED_PERSON_IDS) == 5
    users = {r["user_id"]: r for r in sheet_rows(export.xlsx, "Users")}
    emails, names = [], {}
    for pid in PROTECTED_PERSON_IDS:
        row = users[pid]
        assert (row["username"], row["given_name"], row["family_name"]) == (MASK, MASK, MASK)
        assert row["role"] == "student" and row["schools"]
        assert row["classes"] is None and row["groups"] is None
        email, given, family = q(demo_warehouse, "SELECT email, given_name, family_name FROM roster.users WHERE user_id = ?",
                                 [pid])[0]
        emails.append(email)
        names[pid] = (given, family)
    # no Memberships row at all (their class and groups could identify them), but counted in the groups
    memberships = sheet_rows(export.xlsx, "Memberships")
    assert not any(pid in (r["user_id"] or "") for r in memberships for pid in PROTECTED_PERSON_IDS)
    assert not any(MASK in (r["name"] or "") for r in memberships)
    in_roster = dict(q(demo_warehouse, """SELECT group_id, count(*) FROM roster.memberships
                                          WHERE role = 'student' GROUP BY 1"""))
    groups = sheet_rows(export.xlsx, "Groups")
    assert all(r["students"] == in_roster.get(r["group_id"], 0) for r in groups)
    shown = Counter(r["group_id"] for r in memberships if r["role"] == "student")
    hidden = q(demo_warehouse, f"""SELECT count(*) FROM roster.memberships
                                    WHERE list_contains({list(PROTECTED_PERSON_IDS)!r}, user_id)""")[0][0]
    assert hidden >= 5 * 4 and sum(in_roster.values()) - sum(shown.values()) == hidden
    everything = "\n".join(p.read_text(encoding="utf-8") for p in export.csv.values())
    everything += "\n".join(str(v) for sheet in SHEETS for row in values(export.xlsx, sheet) for v in row)
    for email in emails:
        assert email not in everything
    # (names are not unique: another person may share one, so look at the rows that name the protected id)
    for sheet in SHEETS:
        for row in values(export.xlsx, sheet):
            for pid, (given, family) in names.items():
                if any(pid in str(v) for v in row):
                    assert given not in row and family not in row and not any(f"{given} {family}" in str(v) for v in row)


def test_no_civic_number_in_any_export(export):
    civic = [demo_person(pid)["civicNo"]["value"] for pid in PROTECTED_PERSON_IDS]
    for page in sorted((drop_folder(DEMO_DATA) / "persons").glob("*.json")):
        civic += [p["civicNo"]["value"] for p in json.loads(page.read_text(encoding="utf-8"))["data"] if p.get("civicNo")]
    assert len(civic) > 500
    everything = "\n".join(p.read_text(encoding="utf-8") for p in export.csv.values())
    everything += "\n".join(str(v) for sheet in SHEETS for row in values(export.xlsx, sheet) for v in row)
    assert not [c for c in civic if c in everything or c.replace("-", "")[2:] in everything]


def test_csv_files_match_the_sheets(export):
    for sheet, (_, name) in SHEETS.items():
        path = export.csv[sheet]
        assert path == export.folder / name
        raw = path.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf")
        with path.open(encoding="utf-8", newline="") as f:
            from_csv = list(csv.reader(f))
        def text(v):
            if v is None:
                return ""
            if isinstance(v, dt.datetime):
                return v.date().isoformat()
            return str(v)

        from_xlsx = [[text(v) for v in row] for row in values(export.xlsx, sheet)]
        assert from_csv == from_xlsx, sheet
        assert len(from_csv) == export.rows[sheet] + 1


def test_files_and_folders_are_owner_only(export):
    night_dir = export.folder.parent
    for folder in (night_dir.parent, night_dir, export.folder):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    files = list(export.folder.iterdir())
    assert len(files) == 6
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_one_school_only(demo_warehouse, tmp_path):
    code, school_id, name = q(demo_warehouse, "SELECT school_unit_code, school_id, name FROM roster.schools "
                                              "WHERE name = 'Norrby skola'")[0]
    _, files = write_validation_files(demo_warehouse, tmp_path, as_of=DEMO_NIGHT, school=code)
    (f,) = files
    assert f.folder == tmp_path / DEMO_NIGHT.isoformat() / AUTHORITY / f"norrby-skola-{code}"
    summary = sheet_rows(f.xlsx, "Summary")
    assert [r["school_id"] for r in summary] == [school_id]
    assert {r["school"] for r in sheet_rows(f.xlsx, "Groups")} == {name}
    assert all(name in r["schools"] for r in sheet_rows(f.xlsx, "Users"))
    excluded = sheet_rows(f.xlsx, "Excluded")
    assert excluded and {r["school"] for r in excluded} == {name}
    assert len({r["record_id"] for r in excluded if r["entity_type"] == "person"}) == summary[0]["excluded_persons"]
    assert sum(1 for r in sheet_rows(f.xlsx, "Users")) == sum(summary[0][k] for k in ("students", "teachers", "staff"))
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


def test_cli_export_writes_the_files_and_says_where(demo_warehouse, tmp_path, capsys):
    from skolon_pipeline import cli

    code = cli.main(["export", "--warehouse", str(demo_warehouse), "--export-dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    xlsx = tmp_path / "out" / DEMO_NIGHT.isoformat() / AUTHORITY / XLSX_NAME
    assert code == 0 and xlsx.is_file() and str(xlsx) in out
    assert "Lindbyskolan: 143 students" in out
    assert cli.main(["export", "--warehouse", str(demo_warehouse), "--export-dir", str(tmp_path / "out"),
                     "--school", "nope"]) == 1
    assert "no school unit with code or id 'nope'" in capsys.readouterr().err


def test_a_sheet_longer_than_excel_allows_continues_on_numbered_sheets(demo_warehouse, tmp_path):
    _, (f,) = write_validation_files(demo_warehouse, tmp_path, max_sheet_rows=1000)
    total = f.rows["Memberships"]
    assert total > 2000
    parts = ["Memberships"] + [f"Memberships ({n})" for n in range(2, (total - 1) // 999 + 2)]
    assert load_workbook(f.xlsx, read_only=True).sheetnames == ["Summary", "Users", "Groups", *parts, "Excluded"]
    rows = [r for name in parts for r in values(f.xlsx, name)[1:]]
    csv_rows = f.csv["Memberships"].read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == total == len(csv_rows)  # every row, in the workbook as in the CSV
    assert all(len(values(f.xlsx, name)) <= 1000 for name in parts)
    assert len(values(f.xlsx, "Summary")) == 5  # short sheets whole


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
    rows = {r["record_id"]: r for r in sheet_rows(f.xlsx, "Excluded")}
    assert rows[open_person["id"]]["detail"] == f"the same school e-mail is used by {other['id']}"
    assert rows[lonely["id"]]["detail"] == "the same school e-mail is used by another record in the registry"
    everything = "\n".join(p.read_text(encoding="utf-8") for p in f.csv.values())
    everything += "\n".join(str(v) for sheet in SHEETS for row in values(f.xlsx, sheet) for v in row)
    assert "protected" not in everything.lower()
    assert (rows[hidden["id"]]["person"], rows[hidden["id"]]["email"], rows[hidden["id"]]["detail"]) == (MASK, MASK, None)
    for query in (open_person["id"], "kim lund", "kim.lund@skola.test", "sam ek"):
        answer = find(night_.warehouse, query)
        text = "\n".join(render(answer))
        assert hidden["id"] not in text and "protected" not in text.lower() and "skyddad" not in text.lower(), query
        assert hidden["id"] not in [x.id for x in answer.found]
