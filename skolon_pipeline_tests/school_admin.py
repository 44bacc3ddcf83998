"""Helpers for the School Admin tests: the demo night's accounts and a logged-in ASGI client."""

from __future__ import annotations

import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import duckdb
from argon2 import PasswordHasher

from skolon_pipeline.serve import accounts
from skolon_pipeline.serve.app import AppSettings, create_app
from skolon_pipeline.serve.scope import Scope

PASSWORD = "correct horse battery"
# Argon2 with a small cost, so a test's logins take milliseconds (a hash carries its own parameters, so the
# app verifies these as it would any other; the installation's hashes use argon2-cffi's defaults).
accounts._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
# The demo municipality's schools (school unit codes are stable: the demo is generated from fixed seeds).
GYMNASIUM = "Lindby gymnasium"  # has the held-back students with a date (PLACEMENT_NOT_STARTED, EMPLOYMENT_NOT_STARTED)
LINDBYSKOLAN = "Lindbyskolan"
NORRBY = "Norrby skola"


@dataclass
class Demo:
    warehouse: Path
    data_dir: Path
    schools: dict[str, dict]  # name → school_id, code, authority

    def query(self, sql: str, params=None) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()


def demo_site(tmp: Path, warehouse: Path) -> Demo:
    """A copy of the demo warehouse, and admins.yaml with a school admin per school and an authority admin."""
    tmp.mkdir(parents=True, exist_ok=True)
    wh = tmp / "warehouse.duckdb"
    shutil.copy(warehouse, wh)
    data_dir = tmp / "data"
    data_dir.mkdir(exist_ok=True)
    demo_data = Path(__file__).resolve().parents[1] / "data"
    shutil.copy(demo_data / "sources.yaml", data_dir / "sources.yaml")  # the installation: its drops and time zone
    shutil.copytree(demo_data / "registries", data_dir / "registries")
    schools = {
        name: {"school_id": sid, "code": code, "authority": org}
        for sid, code, name, org in duckdb.connect(str(wh), read_only=True)
        .execute("SELECT school_id, school_unit_code, name, organisation_id FROM roster.schools")
        .fetchall()
    }
    path = accounts.path_in(data_dir)
    for user, scope in (
        ("rektor.gymnasiet", Scope(schools=(schools[GYMNASIUM]["code"],))),
        ("rektor.lindbyskolan", Scope(schools=(schools[LINDBYSKOLAN]["school_id"],))),  # by id, not code
        ("rektor.norrby", Scope(schools=(schools[NORRBY]["code"],))),
        ("it.lindby", Scope(authority=schools[GYMNASIUM]["authority"])),
        ("other.authority", Scope(authority="no-such-authority")),
    ):
        accounts.add(path, user, scope, PASSWORD)
    return Demo(wh, data_dir, schools)


def app_for(demo: Demo, **overrides):
    return create_app(AppSettings(warehouse=demo.warehouse, data_dir=demo.data_dir, **overrides))


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def client(app, base_url: str = "http://testserver"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    return TestClient(app, base_url=base_url, follow_redirects=False)


def login(app, username: str, password: str = PASSWORD, base_url: str = "http://testserver"):
    c = client(app, base_url)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": username, "password": password, "csrf": token, "next": "/"})
    assert r.status_code == 303, r.text
    return c
