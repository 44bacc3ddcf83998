"""Pulling SS12000 from the registry's API (issue 13): a local v2.1 server on 127.0.0.1 (real sockets, uvicorn in
a thread), OAuth2 client credentials, paging, deltas, and every fault either recovered within the limits or
failing only the source with a one-line message, leaving the previous drop untouched."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from skolon_pipeline import night
from skolon_pipeline.config import ApiConfig, Rules, Source, load_installation
from skolon_pipeline.demo import DEMO_NIGHT
from skolon_pipeline.pull.client import PullError, PullPolicy
from skolon_pipeline.pull.drop import DELTA_DIR, MANIFEST, pull_source
from skolon_pipeline.testing.ss12000_server import Fault, Registry, read_drop, serving
from skolon_pipeline_tests.modes import not_owner_only, tree

SECRET = "s3cr3t-Ylva-9f2b7c"
ENV = {"TESTBY_CLIENT_SECRET": SECRET}
FAST = PullPolicy(request_timeout=2.0, max_attempts=4, initial_wait=0.01, max_wait=0.05, jitter=0.01)
D1 = dt.date(2026, 11, 30)


REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "data"  # the shipped demo installation (conftest's demo_warehouse is its night)


def _small_registry() -> dict[str, list[dict]]:
    """One school, three classes of twelve students, each with its teacher: several pages of 10 persons."""
    from skolon_pipeline_tests.registry import Registry as Builder

    b = Builder("pull")
    school = b.school()
    for _ in range(3):
        students = [b.student(school) for _ in range(12)]
        b.teach(school, b.group(school, members=students))
    return b.entities()


SMALL = _small_registry()


@pytest.fixture
def registry() -> Registry:
    return Registry(client_id="skolon-sync", client_secret=SECRET).load(SMALL)


@pytest.fixture
def server(registry):
    """(registry, base URL) of a running test server; stopped after the test."""
    with serving(registry) as url:
        yield registry, url


def _api(url: str, **overrides) -> ApiConfig:
    return ApiConfig(
        **{
            "url": url,
            "token_url": f"{url}/token",
            "client_id": "skolon-sync",
            "client_secret_env": "TESTBY_CLIENT_SECRET",
            "page_size": 10,
            **overrides,
        }
    )


def _source(root: Path, url: str, **api) -> Source:
    return Source("testby", "ss12000", root, Rules(), api=_api(url, **api))


def _pull(source: Source, as_of: dt.date = D1, **kw):
    kw.setdefault("policy", FAST)
    kw.setdefault("environ", ENV)
    kw.setdefault("today", as_of)
    return pull_source(source, as_of, **kw)


def _records(drop: Path) -> dict[str, dict[str, dict]]:
    return {entity: {r["id"]: r for r in records} for entity, records in read_drop(drop).items()}


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ── a pulled night is the file night ──────────────────────────────────────────────────────────────────
def _published(warehouse: Path, as_of: dt.date) -> dict[str, set]:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:

        def rows(sql):
            return set(con.execute(sql, [as_of]).fetchall())

        return {
            "users": rows("SELECT user_id, given_name, family_name, email, role FROM nightly.users WHERE as_of = ?"),
            "schools": rows("SELECT school_id, name, school_unit_code FROM nightly.schools WHERE as_of = ?"),
            "groups": rows(
                "SELECT group_id, school_id, name, group_type, start_date, end_date FROM nightly.groups WHERE as_of = ?"
            ),
            "memberships": rows(
                "SELECT group_id, user_id, role, start_date, end_date FROM nightly.memberships WHERE as_of = ?"
            ),
            "affiliations": rows("SELECT user_id, school_id, role FROM nightly.school_affiliations WHERE as_of = ?"),
            "exclusions": rows(
                "SELECT entity_type, record_id, reason_code, visible_from FROM nightly.exclusions WHERE as_of = ?"
            ),
            "warnings": rows("SELECT entity_type, record_id, code FROM nightly.warnings WHERE as_of = ?"),
        }


@pytest.mark.slow
def test_pulled_roster_equals_the_file_drop_roster(demo_warehouse, tmp_path):
    """The shipped demo drop (every reason code occurs in it) served by the API, pulled, and run: the same roster,
    exclusions and warnings as the file drop's night."""
    drop = max((DEMO_DATA / "registries" / "lindby").iterdir())
    registry = Registry(client_id="skolon-sync", client_secret=SECRET).load_drop(drop)
    pulled_data = tmp_path / "pulled"
    pulled_data.mkdir()
    with serving(registry) as url:
        (pulled_data / "sources.yaml").write_text(
            (DEMO_DATA / "sources.yaml").read_text(encoding="utf-8")
            + f"""\
    api:
      url: {url}
      token_url: {url}/token
      client_id: skolon-sync
      client_secret_env: TESTBY_CLIENT_SECRET
      page_size: 100
""",
            encoding="utf-8",
        )
        installation = load_installation(pulled_data)
        source = installation.source("lindby")
        assert source.api is not None and source.api.page_size == 100
        result = _pull(source, DEMO_NIGHT)
    assert result.status == "pulled" and result.kind == "full"
    assert result.counts["persons"] == len(read_drop(drop)["persons"]) and result.pages["persons"] > 5
    assert sorted(p.name for p in (result.drop_dir / "persons").iterdir())[:2] == ["page-00001.json", "page-00002.json"]

    warehouse = tmp_path / "api-wh" / "warehouse.duckdb"
    night.run_night(installation, DEMO_NIGHT, warehouse, warehouse.parent / "staging")
    from_file, from_api = _published(demo_warehouse, DEMO_NIGHT), _published(warehouse, DEMO_NIGHT)
    assert from_file["users"] and from_file["exclusions"] and from_file["memberships"]
    for table in from_file:
        assert from_api[table] == from_file[table], table


def test_paging_follows_the_spec(server, tmp_path):
    registry, url = server
    result = _pull(_source(tmp_path / "reg", url, page_size=10))
    persons = [q for path, q in registry.requests if path == "persons"]
    assert len(persons) == result.pages["persons"] > 2
    assert persons[0] == [("limit", "10")]
    for query in persons[1:]:  # the token alone (with limit, as the spec allows), no other filter
        assert [k for k, _ in query] == ["pageToken", "limit"]
    last = json.loads(sorted((result.drop_dir / "persons").iterdir())[-1].read_text(encoding="utf-8"))
    assert last["pageToken"] is None
    manifest = json.loads((result.drop_dir / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["kind"] == "full" and manifest["base_url"] == url and manifest["counts"] == result.counts
    assert manifest["pages"] == result.pages and "duration_seconds" in manifest and manifest["pulled_at"]


def test_pulled_drop_is_owner_only_and_never_holds_the_secret(server, tmp_path):
    _, url = server
    result = _pull(_source(tmp_path / "reg", url))
    assert not_owner_only(tree(result.drop_dir)) == {}
    for path in result.drop_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# ── deltas ────────────────────────────────────────────────────────────────────────────────────────────
def _change_the_registry(registry: Registry) -> None:
    persons = registry.records("persons")
    changed = {**persons[0], "givenName": "Ändrad"}
    registry.upsert("persons", changed)
    registry.upsert(
        "persons", {**persons[1], "id": "0f0f0f0f-1111-4222-8333-444455556666", "givenName": "Ny", "familyName": "Elev"}
    )
    registry.delete("persons", persons[2]["id"])
    registry.delete("groups", registry.records("groups")[0]["id"])
    registry.delete("activities", registry.records("activities")[0]["id"])  # sent under the spec's `activitites`
    duty = registry.records("duties")[0]
    registry.upsert("duties", {**duty, "dutyRole": "Rektor"})


def test_a_delta_night_equals_a_full_pull_of_the_same_state(server, tmp_path):
    registry, url = server
    source = _source(tmp_path / "reg", url, full_every_days=7)
    first = _pull(source, D1)
    time.sleep(0.01)
    _change_the_registry(registry)
    registry.requests.clear()
    delta = _pull(source, D1 + dt.timedelta(days=1))
    assert delta.kind == "delta"
    assert delta.changed["persons"] == 2 and delta.deleted["persons"] == 1 and delta.deleted["groups"] == 1
    assert delta.deleted["activities"] == 1 and delta.changed["duties"] == 1
    first_requests = dict(reversed(registry.requests))
    assert any(k == "meta.modified.after" for k, _ in first_requests["persons"])
    assert ("entities", "Person") in first_requests["deletedEntities"]

    full = _pull(_source(tmp_path / "fresh", url), D1 + dt.timedelta(days=1))
    assert full.kind == "full"
    assert _records(delta.drop_dir) == _records(full.drop_dir)
    assert delta.counts == full.counts
    assert (delta.drop_dir / DELTA_DIR / "persons" / "page-00001.json").is_file()  # the changes as sent
    assert _records(first.drop_dir)["persons"] != _records(delta.drop_dir)["persons"]  # the first night untouched
    manifest = json.loads((delta.drop_dir / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["kind"] == "delta" and manifest["merged_with"] == D1.isoformat()


def test_a_full_pull_every_full_every_days(server, tmp_path):
    _, url = server
    source = _source(tmp_path / "reg", url, full_every_days=3)
    kinds = [_pull(source, D1 + dt.timedelta(days=n)).kind for n in range(5)]
    assert kinds == ["full", "delta", "delta", "full", "delta"]


# ── when a night is pulled ────────────────────────────────────────────────────────────────────────────
def test_an_existing_drop_is_not_pulled_again_unless_repull(server, tmp_path):
    registry, url = server
    source = _source(tmp_path / "reg", url)
    _pull(source)
    before = len(registry.requests)
    again = _pull(source)
    assert again.status == "exists" and len(registry.requests) == before
    registry.upsert("persons", {**registry.records("persons")[0], "givenName": "Omhämtad"})
    repulled = _pull(source, repull=True)
    assert repulled.status == "pulled" and len(registry.requests) > before
    assert "Omhämtad" in {r.get("givenName") for r in read_drop(source.root / D1.isoformat())["persons"]}
    assert [p.name for p in source.root.iterdir()] == [D1.isoformat()]  # nothing left beside it


def test_a_past_night_is_not_pulled_on_its_own(server, tmp_path):
    registry, url = server
    result = _pull(_source(tmp_path / "reg", url), D1, today=D1 + dt.timedelta(days=5))
    assert result.status == "skipped" and "--repull" in result.note and not registry.requests


# ── faults that recover ───────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize(
    "fault",
    [
        Fault("429", retry_after="0"),
        Fault("429", path="persons", page=2, times=2),
        Fault("503", path="groups", retry_after="0"),
        Fault("500", path="persons", page=3),
        Fault("slow", path="persons", page=2, delay=0.6),
        Fault("expire_token", path="persons", page=2),
        Fault("not_json", path="duties"),
        Fault("drop", path="persons", page=2),
        Fault("500", path="token"),
        Fault("500", path="deletedEntities"),
    ],
    ids=lambda f: f"{f.kind}-{f.path}-p{f.page}",
)
def test_faults_recover_within_the_limits(server, tmp_path, fault):
    registry, url = server
    clean = _pull(_source(tmp_path / "clean", url))
    source = _source(tmp_path / "reg", url)
    if fault.path == "deletedEntities":
        _pull(source, D1 - dt.timedelta(days=1), today=D1 - dt.timedelta(days=1))
    registry.inject(fault)
    policy = PullPolicy(request_timeout=0.3, max_attempts=4, initial_wait=0.01, max_wait=0.05, jitter=0.01)
    result = _pull(source, policy=policy)
    assert fault.fired >= 1
    assert result.retries >= 1
    assert _records(result.drop_dir) == _records(clean.drop_dir)


def test_retry_after_is_honoured(server, tmp_path):
    registry, url = server
    registry.inject(Fault("429", path="groups", retry_after="1"))
    started = time.monotonic()
    result = _pull(_source(tmp_path / "reg", url))
    assert time.monotonic() - started >= 1.0 and result.retries == 1


def test_an_expired_token_is_renewed_before_use(server, tmp_path):
    registry, url = server
    registry.token_lifetime = 1  # authlib renews a token this close to expiry before every request
    result = _pull(_source(tmp_path / "reg", url))
    assert result.status == "pulled" and registry.tokens_issued > 2 and result.retries == 0


# ── faults that fail the source ───────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize(
    ("fault", "api", "expected"),
    [
        (Fault("500", path="persons", page=2, times=None), {}, "GET /persons (page 2): answered 500"),
        (Fault("status", path="persons", page=2, status=403), {}, "GET /persons (page 2) answered 403 Forbidden"),
        (Fault("status", path="groups", status=404), {}, "GET /groups (page 1) answered 404 Not Found"),
        (Fault("not_json", path="duties", times=None), {}, "GET /duties (page 1): is not valid JSON; gave up"),
        (Fault("drop", path="persons", page=1, times=None), {}, "the connection was dropped"),
        (Fault("expire_token", path="persons", page=2, times=None), {}, "401 Unauthorized with a newly issued token"),
        (Fault("429", path="persons", retry_after="3600"), {}, "answered 429 Too Many Requests; gave up"),
        (Fault("slow", path="persons", page=1, delay=1.5, times=None), {"timeout_minutes": 0.01}, "timed out"),
        (None, {"client_id": "someone-else"}, "refused the client credentials (invalid_client)"),
    ],
    ids=[
        "500-always",
        "403",
        "404",
        "not-json-always",
        "dropped-always",
        "401-always",
        "retry-after-too-long",
        "too-slow-for-timeout_minutes",
        "bad-credentials",
    ],
)
def test_faults_fail_the_pull_with_one_line_and_leave_the_previous_drop(server, tmp_path, fault, api, expected):
    registry, url = server
    root = tmp_path / "reg"
    previous = _pull(_source(root, url), D1 - dt.timedelta(days=1), today=D1 - dt.timedelta(days=1))
    before = _tree_digest(root)
    if fault is not None:
        registry.inject(fault)
    started = time.monotonic()
    with pytest.raises(PullError) as caught:
        _pull(
            _source(root, url, full_every_days=1, **api),
            policy=PullPolicy(request_timeout=0.5, max_attempts=3, initial_wait=0.01, max_wait=0.05, jitter=0.01),
        )
    message = str(caught.value)
    assert expected in message and message.startswith("source 'testby': pull failed: ")
    assert "\n" not in message and SECRET not in message and "Bearer" not in message
    assert time.monotonic() - started < 10
    assert _tree_digest(root) == before  # the previous drop as it was, nothing new, no temporary folder
    assert [p.name for p in root.iterdir()] == [previous.drop_dir.name]


def test_a_missing_secret_fails_naming_the_variable(server, tmp_path):
    _, url = server
    with pytest.raises(PullError, match=r"TESTBY_CLIENT_SECRET \(client_secret_env\) is not set"):
        _pull(_source(tmp_path / "reg", url), environ={})
    assert not (tmp_path / "reg").exists() or not any((tmp_path / "reg").iterdir())


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
def test_both_client_authentication_methods(tmp_path, method):
    registry = Registry(client_id="skolon-sync", client_secret=SECRET, auth_method=method).load(SMALL)
    with serving(registry) as url:
        assert _pull(_source(tmp_path / "ok", url, auth_method=method)).status == "pulled"
        other = "client_secret_basic" if method == "client_secret_post" else "client_secret_post"
        with pytest.raises(PullError, match="invalid_client"):
            _pull(_source(tmp_path / "wrong", url, auth_method=other))


def test_mutual_tls_with_a_private_ca(tmp_path):
    certs = _make_certs(tmp_path / "pki")
    registry = Registry(client_id="skolon-sync", client_secret=SECRET).load(SMALL)
    import ssl

    tls = {
        "ssl_certfile": str(certs["server.pem"]),
        "ssl_keyfile": str(certs["server.key"]),
        "ssl_ca_certs": str(certs["ca.pem"]),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    with serving(registry, **tls) as url:
        assert url.startswith("https://127.0.0.1:")
        ok = _pull(
            _source(
                tmp_path / "ok",
                url,
                ca_bundle=str(certs["ca.pem"]),
                client_cert=str(certs["client.pem"]),
                client_key=str(certs["client.key"]),
            )
        )
        assert ok.status == "pulled" and ok.counts["persons"] > 0
        with pytest.raises(PullError, match="could not be verified"):  # verification is always on
            _pull(
                _source(
                    tmp_path / "no-ca", url, client_cert=str(certs["client.pem"]), client_key=str(certs["client.key"])
                )
            )
        with pytest.raises(PullError, match="connection"):  # the server demands a client certificate
            _pull(_source(tmp_path / "no-cert", url, ca_bundle=str(certs["ca.pem"])))


def _make_certs(folder: Path) -> dict[str, Path]:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, ca=False, san=None, usage=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("Test CA", ca_key, "Test CA", ca_key, ca=True)
    out = {"ca.pem": ca}
    for who, san, usage in (
        ("server", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", None, ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        out[f"{who}.pem"] = cert(who, key, "Test CA", ca_key, san=san, usage=usage)
        (folder / f"{who}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    paths = {k: folder / k for k in ("server.key", "client.key")}
    for file, c in out.items():
        (folder / file).write_bytes(c.public_bytes(serialization.Encoding.PEM))
        paths[file] = folder / file
    return paths


# ── configuration ─────────────────────────────────────────────────────────────────────────────────────
API_YAML = """
timezone: Europe/Stockholm
sources:
  - id: norrby
    format: ss12000
    path: registries/norrby
    api:
      url: https://registry.example/ss12000/v2.0
      token_url: https://idp.example/connect/token
      client_id: skolon-sync
      client_secret_env: NORRBY_CLIENT_SECRET
      auth_method: client_secret_post
      scope: null
      client_cert: null
      client_key: null
      ca_bundle: null
      page_size: 1000
      full_every_days: 7
      timeout_minutes: 60
"""


def test_the_contract_api_block_loads(tmp_path):
    (tmp_path / "sources.yaml").write_text(API_YAML, encoding="utf-8")
    api = load_installation(tmp_path).source("norrby").api
    assert api.url == "https://registry.example/ss12000/v2.0" and api.auth_method == "client_secret_post"
    assert api.page_size == 1000 and api.full_every_days == 7 and api.timeout_minutes == 60


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("https://registry.example", "http://registry.example"), "use https"),
        (("https://idp.example", "https://user:pw@idp.example"), "must not hold credentials"),
        (("client_secret_post", "private_key_jwt"), "sources[0].api.auth_method"),
        (("page_size: 1000", "page_size: 0"), "sources[0].api.page_size"),
        (("client_key: null", "client_key: null\n      secret: hunter2"), "sources[0].api.secret: unknown key"),
        (("client_cert: null", "client_cert: certs/client.pem"), "client_cert and client_key go together"),
        (("format: ss12000", "format: oneroster"), "api: only for format ss12000"),
    ],
)
def test_api_configuration_errors_name_the_key(tmp_path, change, message):
    from skolon_pipeline.config import ConfigError

    (tmp_path / "sources.yaml").write_text(API_YAML.replace(*change), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_installation(tmp_path)
    assert message in str(caught.value)


# ── a night through Dagster and the CLI ───────────────────────────────────────────────────────────────
def _write_installation(data_dir: Path, url: str) -> None:
    """An API-only source `testby` beside a file source `other`."""
    from skolon_pipeline_tests.registry import Registry as Builder
    from skolon_pipeline_tests.registry import write_sources

    other = Builder("pull-other")
    school = other.school("Andra skolan", "87654321")
    other.teach(school, other.group(school, members=[other.student(school) for _ in range(5)]))
    other.write(data_dir, drop_date="2026-11-01", source_id="other")
    write_sources(
        data_dir,
        [
            {
                "id": "testby",
                "format": "ss12000",
                "path": "registries/testby",
                "api": {
                    "url": url,
                    "token_url": f"{url}/token",
                    "client_id": "skolon-sync",
                    "client_secret_env": "TESTBY_CLIENT_SECRET",
                    "page_size": 10,
                },
            },
            # a file source whose one drop serves every night of the test (not a frozen registry)
            {"id": "other", "format": "ss12000", "path": "registries/other", "rules": {"max_drop_age_days": 60}},
        ],
    )


@pytest.mark.slow
def test_a_pulled_night_through_dagster_and_a_failed_pull_carried_over(server, tmp_path, monkeypatch, capsys, caplog):
    import duckdb

    from skolon_pipeline import cli

    registry, url = server
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_bytes((REPO / "skolon_pipeline" / "dagster.yaml").read_bytes())
    for name in ("SKOLON_DATA_DIR", "SKOLON_WAREHOUSE", "SKOLON_EXPORT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("TESTBY_CLIENT_SECRET", SECRET)
    data = tmp_path / "data"
    _write_installation(data, url)
    warehouse = tmp_path / "wh" / "warehouse.duckdb"

    def run(night_date: dt.date) -> int:
        return cli.main(
            [
                "run",
                "--as-of",
                str(night_date),
                "--repull",
                "--executor",
                "in_process",
                "--data-dir",
                str(data),
                "--warehouse",
                str(warehouse),
                "--export-dir",
                str(tmp_path / "ex"),
            ]
        )

    assert run(D1) == 0
    out = capsys.readouterr().out
    pulled = data / "registries" / "testby" / D1.isoformat()
    assert (pulled / "pull.json").is_file() and (pulled / "persons" / "page-00004.json").is_file()
    assert "  source testby:\n    pull: full pull from " in out and "39 persons" in out and "retries" in out
    with duckdb.connect(str(warehouse), read_only=True) as con:
        users = dict(con.execute("SELECT source_id, count(*) FROM roster.users GROUP BY ALL").fetchall())
    assert users == {"testby": 39, "other": 6}

    registry.inject(Fault("status", path="persons", page=None, status=403, times=None))
    before = _tree_digest(data / "registries")
    assert run(D1 + dt.timedelta(days=1)) == cli.EXIT_SOURCE_FAILED
    captured = capsys.readouterr()
    assert "pull failed: GET /persons (page 1) answered 403 Forbidden" in captured.err
    assert "pull: FAILED (GET /persons (page 1) answered 403 Forbidden)" in captured.out
    assert _tree_digest(data / "registries") == before  # no partial drop, the previous one untouched
    with duckdb.connect(str(warehouse), read_only=True) as con:
        stale = con.execute("SELECT count(*), min(stale_since) FROM roster.users WHERE source_id = 'testby'").fetchone()
    assert stale == (39, D1)

    import dagster as dg

    from skolon_pipeline.defs.sources import pull_key

    with dg.DagsterInstance.from_config(str(home)) as instance:
        events = instance.fetch_materializations(pull_key("testby"), limit=10).records
        first = next(e.asset_materialization for e in events if e.partition_key == D1.isoformat())
        meta = {k: v.value for k, v in first.metadata.items()}
    assert meta["status"] == "pulled" and meta["kind"] == "full" and meta["records/persons"] == 39
    assert meta["pages"] >= 5 and meta["retries"] == 0 and meta["duration_seconds"] > 0 and meta["base_url"] == url

    # The secret is nowhere: not in the instance storage, the drops, the warehouse, staging, exports or the output.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in out + captured.out + captured.err + caplog.text


def test_the_pull_command_pulls_today_without_running_the_night(server, tmp_path, monkeypatch, capsys):
    import zoneinfo

    from skolon_pipeline import cli

    registry, url = server
    for name in ("SKOLON_DATA_DIR", "SKOLON_WAREHOUSE", "SKOLON_EXPORT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TESTBY_CLIENT_SECRET", SECRET)
    data = tmp_path / "data"
    _write_installation(data, url)
    args = ["pull", "--data-dir", str(data), "--warehouse", str(tmp_path / "wh" / "w.duckdb")]
    today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/Stockholm")).date()
    assert cli.main([*args, "--source", "testby"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("source testby: full pull from ") and "39 persons" in out
    assert (data / "registries" / "testby" / today.isoformat() / "pull.json").is_file()
    assert not (tmp_path / "wh").exists()  # nothing else ran
    assert cli.main(args) == 0
    assert "exists; not pulled again" in capsys.readouterr().out
    assert cli.main([*args, "--repull"]) == 0
    assert "full pull" in capsys.readouterr().out  # today's drop again, from scratch
    assert cli.main([*args, "--source", "other"]) == cli.EXIT_USAGE
    assert "no source 'other' with an api block" in capsys.readouterr().err
    registry.inject(Fault("status", path="organisations", status=403, times=None))
    assert cli.main([*args, "--repull"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("error: source 'testby': pull failed: GET /organisations (page 1) answered 403 Forbidden")
    assert SECRET not in err


@pytest.mark.slow  # `skolon-pipeline demo --serve` in a subprocess, and a pull of the whole demo registry
def test_demo_serve_starts_a_local_api_the_demo_source_pulls_from(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "SKOLON_DEMO_CLIENT_SECRET": SECRET}
    data = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "skolon_pipeline.cli", "demo", "--serve", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while not any("skolon-pipeline run" in line for line in lines) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        assert "SS12000 API of the demo registry on http://127.0.0.1:" in text, text
        assert f"--as-of {DEMO_NIGHT} --repull" in text and SECRET not in text
        source = load_installation(data).source("lindby")
        assert source.api is not None and source.api.url.startswith("http://127.0.0.1:")
        result = pull_source(source, DEMO_NIGHT, repull=True, environ=env, policy=FAST)
        assert result.status == "pulled" and result.counts["persons"] > 1000
    finally:
        proc.terminate()
        try:  # cleanup, not what this test asserts: on a loaded machine give it a second chance
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def test_the_pull_is_the_first_stage_of_lineage(tmp_path):
    from skolon_pipeline.config import Settings
    from skolon_pipeline.definitions import build_defs
    from skolon_pipeline.defs.sources import extract_key, pull_key

    _write_installation(tmp_path / "data", "https://registry.example/ss12000/v2.0")
    graph = build_defs(Settings(tmp_path / "data", tmp_path / "w.duckdb", tmp_path / "ex")).resolve_asset_graph()
    node = graph.get(pull_key("testby"))
    assert node.group_name == "pull" and node.kinds and "SS12000 API" in node.description
    assert not node.parent_keys
    assert graph.get(extract_key("testby")).parent_keys == {pull_key("testby")}
    assert pull_key("other") not in graph.get_all_asset_keys()  # a file source has no pull
