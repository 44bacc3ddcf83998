"""Data protection, end to end on the demo night: civic numbers are nowhere in clear, protected persons'
private details are nowhere at all, and Dagster's storage and the CLI's output carry ids and counts only.

One demo night is run through the CLI in a subprocess with DAGSTER_HOME set to a temporary folder; then every
warehouse and staging table is searched (SQL, every column as text), every export file (the CSV files as text,
the .xlsx unpacked), every file under DAGSTER_HOME (sqlite databases and compute logs as bytes) and the
captured output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from skolon_pipeline.demo import DEMO_NIGHT, PROTECTED_PERSON_IDS
from skolon_pipeline.sources.civic import KEY_ENV
from skolon_pipeline_tests.modes import not_owner_only, tree

pytestmark = pytest.mark.slow  # the demo night through the CLI, then every table, file and log it wrote

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "data"


def _demo_persons() -> list[dict]:
    drop = max((DEMO_DATA / "registries" / "lindby").iterdir())
    persons = []
    for path in sorted(drop.glob("persons/*.json")) + sorted(drop.glob("persons.json")):
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
        persons += doc["data"] if isinstance(doc, dict) else doc
    return persons


PERSONS = _demo_persons()
PROTECTED = [p for p in PERSONS if p["id"].lower() in PROTECTED_PERSON_IDS]
CIVIC_NUMBERS = {p["civicNo"]["value"] for p in PERSONS if p.get("civicNo")}


def _private_details(person: dict) -> set[str]:
    """What the warehouse never keeps of a protected person: address, phone, private e-mail, guardians."""
    details = {a["streetAddress"] for a in person.get("addresses", [])}
    details |= {ph["value"] for ph in person.get("phoneNumbers", [])}
    details |= {e["value"] for e in person.get("emails", []) if e.get("type") == "Privat"}
    details |= {r["person"]["id"] for r in person.get("responsibles", [])}
    if person.get("photo"):
        details.add(person["photo"])
    return details


PROTECTED_DETAILS = set().union(*(_private_details(p) for p in PROTECTED))
# Guardians' own records are in the staging files (a guardian-only person must not be reported as missing);
# which child is theirs is not, for a protected child.
GUARDIAN_IDS = {r["person"]["id"] for p in PROTECTED for r in p.get("responsibles", [])}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protect")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "skolon_pipeline" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKOLON_") and k != KEY_ENV}
    env.update(DAGSTER_HOME=str(home), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "skolon_pipeline.cli",
            "run",
            "--as-of",
            str(DEMO_NIGHT),
            "--data-dir",
            str(DEMO_DATA),
            "--warehouse",
            str(tmp / "wh" / "warehouse.duckdb"),
            "--export-dir",
            str(tmp / "exports"),
            "--verbose",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, done.stdout + done.stderr


def _table_texts(db: Path) -> dict[str, str]:
    """Every table of a DuckDB file as one text per table (all schemas, every column cast to text)."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute(
            "SELECT database_name, schema_name, table_name FROM duckdb_tables() WHERE NOT temporary"
        ).fetchall()
        return {
            f"{s}.{t}": "\n".join(repr(row) for row in con.execute(f'SELECT * FROM "{d}"."{s}"."{t}"').fetchall())
            for d, s, t in tables
        }


def _found(needles: set[str], text: str) -> set[str]:
    return {n for n in needles if n in text}


def test_the_demo_has_what_the_checks_look_for():
    assert len(PROTECTED) == len(PROTECTED_PERSON_IDS) >= 3
    assert len(CIVIC_NUMBERS) > 500
    assert {"Skyddad folkbokföring", "Sekretessmarkering"} <= {p["securityMarking"] for p in PROTECTED}
    assert all(p.get("addresses") and p.get("phoneNumbers") and p.get("responsibles") for p in PROTECTED)


def test_no_civic_number_and_no_private_detail_of_a_protected_person_in_any_table(demo_run):
    tmp, _ = demo_run
    databases = [tmp / "wh" / "warehouse.duckdb", *sorted((tmp / "wh" / "staging").rglob("*.duckdb"))]
    assert len(databases) >= 3  # the warehouse, the source's staging file, the rules database
    for db in databases:
        details = PROTECTED_DETAILS if db.name == "warehouse.duckdb" else PROTECTED_DETAILS - GUARDIAN_IDS
        for table, text in _table_texts(db).items():
            assert not _found(CIVIC_NUMBERS, text), f"{db.name} {table}: a civic number in clear"
            assert not _found(details, text), f"{db.name} {table}: a protected person's private detail"
        raw = db.read_bytes()
        assert not [n for n in CIVIC_NUMBERS if n.encode() in raw], f"{db.name}: a civic number in the file's bytes"
    with duckdb.connect(str(tmp / "wh" / "staging" / str(DEMO_NIGHT) / "lindby.duckdb"), read_only=True) as con:
        links = con.execute(
            "SELECT count(*) FROM responsibles WHERE list_contains(?, person_id)", [list(PROTECTED_PERSON_IDS)]
        ).fetchone()[0]
        guardians = con.execute(
            "SELECT count(DISTINCT responsible_id) FROM responsibles WHERE person_id IS NULL"
        ).fetchone()[0]
    assert links == 0 and guardians > 0  # their guardians are known as guardians, not as theirs
    with duckdb.connect(str(tmp / "wh" / "warehouse.duckdb"), read_only=True) as con:
        users = dict(con.execute("SELECT user_id, civic_no_hash FROM roster.users WHERE protected_identity").fetchall())
    assert set(users) == set(PROTECTED_PERSON_IDS)  # they are in the roster, pseudonymised like everyone
    assert all(h and len(h) == 64 for h in users.values())


def test_export_files_hold_no_civic_number_and_no_protected_contact_detail(demo_run):
    tmp, _ = demo_run
    files = [p for p in (tmp / "exports").rglob("*") if p.is_file()]
    school_emails = {e["value"] for p in PROTECTED for e in p["emails"] if e.get("type") != "Privat"}
    for path in files:
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as archive:
                text = "\n".join(archive.read(n).decode("utf-8", "replace") for n in archive.namelist())
        else:
            text = path.read_text(encoding="utf-8-sig", errors="replace")
        assert not _found(CIVIC_NUMBERS, text), f"{path.name}: a civic number"
        assert not _found(PROTECTED_DETAILS | school_emails, text), f"{path.name}: a protected person's contact detail"


def test_dagster_storage_and_cli_output_carry_no_names_emails_or_civic_numbers(demo_run):
    tmp, output = demo_run
    names = {f"{p['givenName']} {p['familyName']}" for p in PERSONS if p.get("givenName") and p.get("familyName")}
    emails = {e["value"] for p in PERSONS for e in p.get("emails", []) if e.get("value")}
    needles = CIVIC_NUMBERS | names | {e.lower() for e in emails} | emails
    files = [p for p in (tmp / "dagster_home").rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files) and len(files) >= 3
    for path in files:
        raw = path.read_bytes()
        leaked = [n for n in needles if n.encode("utf-8") in raw]
        assert not leaked, f"{path.relative_to(tmp)}: {len(leaked)} names, e-mails or civic numbers"
    assert not _found(needles, output)
    assert "built-in demo key" in output  # the demo says it uses the public key


def test_everything_written_is_owner_only(demo_run):
    tmp, _ = demo_run
    written = [*tree(tmp / "wh"), *tree(tmp / "exports")]
    assert any(p.suffix == ".csv" for p in written) and any(p.suffix == ".xlsx" for p in written)
    assert any(p.suffix == ".duckdb" for p in written)
    assert not_owner_only(written) == {}
