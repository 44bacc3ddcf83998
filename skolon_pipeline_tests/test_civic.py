"""Civic numbers: validated (Luhn, dates, samordningsnummer, TF numbers), tolerated forms normalised, and
stored only as HMAC-SHA256 with the installation's key; a bad one is a warning, never an exclusion."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import stat
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from skolon_pipeline.config import ConfigError
from skolon_pipeline.sources.civic import (
    DEMO_MARKER,
    DEMO_MARKER_TEXT,
    KEY_ENV,
    PseudonymKey,
    hash_civic_no,
    is_demo_drop,
    pseudonym_key,
    pseudonymise,
)
from skolon_pipeline_tests.registry import Registry

SECRET = "a test key that is long enough, 0123456789"
KEY = PseudonymKey.from_secret(SECRET)
NIGHT = dt.date(2025, 12, 15)


def luhn(first_nine: str) -> str:
    """The check digit of YYMMDDNNN."""
    total = 0
    for i, ch in enumerate(first_nine):
        p = int(ch) * (2 if i % 2 == 0 else 1)
        total += p // 10 + p % 10
    return str((10 - total % 10) % 10)


def valid(yyyymmdd: str, nnn: str = "123") -> str:
    return yyyymmdd + nnn + luhn(yyyymmdd[2:] + nnn)


def wrong_check(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def _check(values: dict[str, str | tuple[str, str]]) -> dict[str, tuple[str | None, list[tuple[str, str]]]]:
    """person_id → (civic_no_hash, [(code, detail)]) after pseudonymising `values` (raw or (raw, nationality))."""
    con = duckdb.connect()
    con.execute("CREATE TABLE persons (person_id VARCHAR)")
    con.execute(
        "CREATE TABLE warnings (source_id VARCHAR, entity_type VARCHAR, record_id VARCHAR, code VARCHAR, detail VARCHAR)"
    )
    con.execute("CREATE TEMP TABLE civic_numbers (person_id VARCHAR, raw VARCHAR, nationality VARCHAR)")
    for pid, value in values.items():
        raw, nationality = value if isinstance(value, tuple) else (value, None)
        con.execute("INSERT INTO persons VALUES (?)", [pid])
        con.execute("INSERT INTO civic_numbers VALUES (?, ?, ?)", [pid, raw, nationality])
    pseudonymise(con, "testby", NIGHT, KEY)
    hashes = dict(con.execute("SELECT person_id, civic_no_hash FROM persons").fetchall())
    warnings = con.execute("SELECT record_id, code, detail FROM warnings ORDER BY ALL").fetchall()
    # the temporary table of clear numbers is gone
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'civic%'").fetchone()[0] == 0
    return {pid: (hashes[pid], [(c, d) for r, c, d in warnings if r == pid]) for pid in values}


def test_hash_is_hmac_sha256_of_the_twelve_digit_form():
    number = valid("19811218", "987")
    ((got, warnings),) = _check({"p": number}).values()
    assert got == hmac.new(SECRET.encode(), number.encode(), hashlib.sha256).hexdigest()
    assert got == hash_civic_no(number, KEY)
    assert warnings == []


@pytest.mark.parametrize(
    "number",
    [
        valid("20120101"),  # personnummer
        valid("20120161"),  # samordningsnummer: day 01 + 60
        valid("20000229"),  # 29 February of a leap year
        "20120101TF01",  # temporary number (no check digit)
        "20120101tf01",  # ... in lower case
    ],
)
def test_valid_numbers_are_hashed_without_warning(number):
    ((got, warnings),) = _check({"p": number}).values()
    assert got == hash_civic_no(number.upper(), KEY)
    assert warnings == []


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        (wrong_check(valid("20120101")), "wrong check digit"),
        (valid("20120230"), "no such birth date"),
        (valid("20121301"), "no such birth date"),
        (valid("20120192"), "no such birth date"),  # day 32 as samordningsnummer
        ("20120230TF01", "no such birth date"),
        (valid("20300101"), "the birth date is after the night"),
        ("abc", "not a civic number"),
        (wrong_check(valid("20120101"))[2:], "wrong check digit"),  # 10 digits, bad check digit
        ("201201011234567", "not a civic number"),
        ("20120101XY01", "not a civic number"),
        ('{"value": 1}', "not a civic number"),
    ],
)
def test_invalid_numbers_are_dropped_with_a_warning_that_does_not_repeat_them(number, problem):
    ((got, warnings),) = _check({"p": number}).values()
    assert got is None
    assert [c for c, _ in warnings] == ["INVALID_CIVIC_NO"]
    assert problem in warnings[0][1]
    assert number not in warnings[0][1] and number[:8] not in warnings[0][1]


@pytest.mark.parametrize(
    ("sent", "read_as", "form"),
    [
        (valid("20120101")[:8] + "-" + valid("20120101")[8:], valid("20120101"), "with a hyphen"),
        ("20120101-TF01", "20120101TF01", "with a hyphen"),
        (valid("20120101")[2:], valid("20120101"), "in 10 digits"),  # born 2012
        (valid("19811218")[2:], valid("19811218"), "in 10 digits"),  # 811218 is after the night in 2025
        (valid("20251215")[2:], valid("20251215"), "in 10 digits"),  # born on the night itself
        (valid("19811218")[2:8] + "-" + valid("19811218")[8:], valid("19811218"), "with a separator"),
        (valid("18811218")[2:8] + "+" + valid("18811218")[8:], valid("18811218"), "with a separator"),  # 100+
    ],
)
def test_hyphen_and_ten_digit_forms_are_normalised_with_a_warning(sent, read_as, form):
    ((got, warnings),) = _check({"p": sent}).values()
    assert got == hash_civic_no(read_as, KEY)
    assert [c for c, _ in warnings] == ["CIVIC_NO_NORMALISED"]
    assert form in warnings[0][1] and sent not in warnings[0][1]


def test_another_nationality_is_hashed_as_sent_and_blank_values_are_ignored():
    result = _check({"fi": ("131052-308T", "FI"), "se": (valid("20120101"), "SWE"), "blank": "  "})
    assert result["fi"] == (hash_civic_no("131052-308T", KEY), [])
    assert result["se"] == (hash_civic_no(valid("20120101"), KEY), [])
    assert result["blank"] == (None, [])


def test_the_key_comes_from_the_environment_and_must_be_long(tmp_path):
    demo = pseudonym_key({}, demo_drop=True)
    assert demo.is_demo
    own = pseudonym_key({KEY_ENV: SECRET}, key_file=tmp_path / "pseudonym.key", demo_drop=True)
    assert not own.is_demo and hash_civic_no("20120101TF01", own) != hash_civic_no("20120101TF01", demo)
    assert not (tmp_path / "pseudonym.key").exists()  # the variable wins, and no file is made
    with pytest.raises(ConfigError, match=f"{KEY_ENV} is too short"):
        pseudonym_key({KEY_ENV: "short"})
    assert SECRET not in repr(own)


def test_without_the_variable_the_first_run_creates_a_private_random_key_and_keeps_using_it(tmp_path):
    path = tmp_path / "wh" / "pseudonym.key"
    first = pseudonym_key({}, key_file=path)
    assert first.created and not first.is_demo and first.origin == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text(encoding="ascii").strip()
    assert len(secret) == 64 and int(secret, 16)
    again = pseudonym_key({}, key_file=path)
    assert not again.created and (again.inner, again.outer) == (first.inner, first.outer)
    assert hash_civic_no("20120101TF01", again) != hash_civic_no("20120101TF01", pseudonym_key({}, demo_drop=True))
    other = pseudonym_key({}, key_file=tmp_path / "other" / "pseudonym.key")
    assert other.inner != first.inner  # random, not derived from anything public
    assert secret not in repr(again)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        pseudonym_key({}, key_file=path)


def test_sources_extracted_at_once_agree_on_one_key(tmp_path):
    path = tmp_path / "pseudonym.key"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: pseudonym_key({}, key_file=path), range(16)))
    assert len({k.inner for k in keys}) == 1 and sum(k.created for k in keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["pseudonym.key"]


def test_real_data_is_never_hashed_with_the_public_key(run_registry, monkeypatch, tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    reg = Registry()
    school = reg.school()
    student = reg.student(school, civicNo={"value": valid("20120101"), "nationality": "SE"})
    night = run_registry(reg)
    key = pseudonym_key({}, key_file=tmp_path / "pseudonym.key")  # beside the warehouse, made by the run
    assert not key.created
    stored = dict(night.query("SELECT user_id, civic_no_hash FROM roster.users"))
    assert stored == {student["id"]: hash_civic_no(valid("20120101"), key)}
    assert stored[student["id"]] != hash_civic_no(valid("20120101"), pseudonym_key({}, demo_drop=True))
    # Only the shipped demo drop, with the marker the demo writes, gets the demo key: not a look-alike.
    drop = next((tmp_path / "data" / "registries" / "testby").iterdir())
    (drop / DEMO_MARKER).write_text("made up, honestly", encoding="utf-8")
    assert not is_demo_drop(drop)
    (drop / DEMO_MARKER).write_text(DEMO_MARKER_TEXT, encoding="utf-8")
    assert is_demo_drop(drop)


def test_a_bad_civic_number_is_a_warning_and_the_person_stays(run_registry, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    reg = Registry()
    school = reg.school()
    good = reg.student(school, civicNo={"value": valid("20120101"), "nationality": "SE"})
    bad = reg.student(school, civicNo={"value": wrong_check(valid("20120102")), "nationality": "SE"})
    hyphen = reg.student(school, civicNo={"value": "20120103-TF01"})
    bare = reg.student(school, civicNo="20120104TF02")  # 2.0 style: a bare string
    none = reg.student(school)
    night = run_registry(reg)
    users = dict(night.query("SELECT user_id, civic_no_hash FROM roster.users"))
    assert users == {
        good["id"]: hash_civic_no(valid("20120101"), KEY),
        bad["id"]: None,
        hyphen["id"]: hash_civic_no("20120103TF01", KEY),
        bare["id"]: hash_civic_no("20120104TF02", KEY),
        none["id"]: None,
    }
    assert {(r, c) for r, c, _ in night.warnings()} == {
        (bad["id"], "INVALID_CIVIC_NO"),
        (hyphen["id"], "CIVIC_NO_NORMALISED"),
    }
