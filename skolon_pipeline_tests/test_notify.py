"""Alerts (`notify:` in sources.yaml): a night held by the guard sends an e-mail (a local SMTP server, aiosmtpd)
and a webhook (a local HTTP receiver), both on 127.0.0.1, through the Dagster sensor evaluated on the real failed
run; the messages carry counts, ids and the approve command, never a name, and the SMTP password appears
nowhere but in the login."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from skolon_pipeline import cli, notify
from skolon_pipeline.config import ConfigError, NotifyConfig, load_installation
from skolon_pipeline.defs.alerts import (
    ALERT_SENSOR,
    STALE_ALERT_SENSOR,
    build_alert_sensor,
    build_stale_drop_sensor,
)
from skolon_pipeline.defs.resources import SkolonResource
from skolon_pipeline_tests.registry import Registry, run_cli

D1, D2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)
PASSWORD = "smtp-pw-7f3a9c1e-never-logged"
HOOK_TOKEN = "hook-token-51d2b8"


class _Inbox:
    def __init__(self):
        self.messages: list[str] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(f"Subject: {message['Subject']}\nTo: {message['To']}\n\n{message.get_content()}")
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login, auth_data.password))
            return AuthResult(success=auth_data.password == PASSWORD.encode(), handled=False)
        return AuthResult(success=False, handled=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = _Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=inbox.authenticate,
        auth_require_tls=False,
        auth_exclude_mechanism=["LOGIN"],
        ready_timeout=10,
    )
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def webhook():
    received: list[tuple[str, dict]] = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/{HOOK_TOKEN}", received, status
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _notify_config(port: int) -> dict:
    return {
        "email": {
            "host": "127.0.0.1",
            "port": port,
            "starttls": False,
            "from": "roster@lindby.example",
            "to": ["it@lindby.example"],
            "username": "roster",
            "password_env": "TEST_SMTP_PASSWORD",
        },
        "webhook": {"url_env": "TEST_WEBHOOK_URL"},
    }


def _with_notify(data: Path, notify_config: dict) -> None:
    path = data / "sources.yaml"
    config = yaml.safe_load(path.read_text())
    config["notify"] = notify_config
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def _held_night(tmp_path) -> list[dict]:
    """Night D1 publishes eleven users; D2's drop lost three students: the guard holds it (exit 3)."""
    reg = Registry()
    school = reg.school()
    students = [reg.student(school, given=f"Elevnamn{i}") for i in range(10)]
    klass = reg.group(school, members=students)
    reg.teach(school, klass)
    reg.write(tmp_path / "data", drop_date=D1.isoformat())
    assert run_cli(tmp_path, "run", D1, export_dir="ex") == 0
    for s in students[7:]:
        reg.persons.remove(s)
    klass["groupMemberships"] = klass["groupMemberships"][:7]
    reg.write(tmp_path / "data", drop_date=D2.isoformat())
    return students


def _evaluate_on_the_last_run(tmp_path, home: Path, build_sensor, sensor_name: str, failed: bool):
    """Evaluates the sensor, as the daemon would, on the installation's last failed (or successful) run."""
    resource = SkolonResource(
        data_dir=str(tmp_path / "data"),
        warehouse=str(tmp_path / "wh" / "warehouse.duckdb"),
        export_dir=str(tmp_path / "ex"),
    )
    status, event_type = (
        (dg.DagsterRunStatus.FAILURE, "PIPELINE_FAILURE")
        if failed
        else (dg.DagsterRunStatus.SUCCESS, "PIPELINE_SUCCESS")
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(filters=dg.RunsFilter(statuses=[status]), limit=1)[0]
        event = next(
            r.dagster_event
            for r in instance.all_logs(run.run_id)
            if r.dagster_event and r.dagster_event.event_type_value == event_type
        )
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor_name, dagster_instance=instance, dagster_run=run, dagster_event=event
        )
        return build_sensor(resource)(context.for_run_failure() if failed else context)


def _evaluate_sensor_on_the_failed_run(tmp_path, home: Path):
    return _evaluate_on_the_last_run(tmp_path, home, build_alert_sensor, ALERT_SENSOR, failed=True)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    for name in ("SKOLON_DATA_DIR", "SKOLON_WAREHOUSE", "SKOLON_EXPORT_DIR", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data" / "dagster_home"  # the installation's instance (skolon_pipeline.instance)


@pytest.mark.slow  # nights through the CLI and Dagster, then the sensor on the failed run
def test_a_held_night_sends_an_email_and_a_webhook_with_counts_and_the_approve_command(
    tmp_path, isolated, smtp, webhook, monkeypatch, capsys, caplog
):
    controller, inbox = smtp
    url, received, _ = webhook
    students = _held_night(tmp_path)
    _with_notify(tmp_path / "data", _notify_config(controller.port))
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("TEST_WEBHOOK_URL", url)
    assert run_cli(tmp_path, "run", D2, export_dir="ex") == cli.EXIT_HELD

    _evaluate_sensor_on_the_failed_run(tmp_path, isolated)

    assert len(inbox.messages) == 1 and inbox.logins == [(b"roster", PASSWORD.encode())]
    mail = inbox.messages[0]
    assert f"Subject: skolon_pipeline: night {D2} HELD by the mass-removal guard" in mail
    assert "3 of 11 users (27%) would be removed" in mail
    assert f"skolon-pipeline approve --as-of {D2}" in mail
    assert (path := received[0][0]) == f"/hooks/{HOOK_TOKEN}" and len(received) == 1
    payload = received[0][1]
    assert payload["event"] == notify.NIGHT_HELD and payload["night"] == D2.isoformat()
    assert "3 of 11 users (27%) would be removed" in payload["text"] and payload["run_id"] in payload["text"]
    everything = [
        mail,
        json.dumps(payload),
        capsys.readouterr().out,
        caplog.text,
        *(p.read_text(errors="replace") for p in isolated.rglob("*") if p.is_file() and p.stat().st_size < 5e6),
    ]
    for student in students:  # ids and counts only, never names
        assert not any(student["givenName"] in blob for blob in everything), path
    assert not any(PASSWORD in blob for blob in everything)
    assert not any(HOOK_TOKEN in blob for blob in everything[:4])


def test_a_delivery_that_fails_says_which_channel_and_why_without_the_secret(smtp, webhook, monkeypatch):
    controller, inbox = smtp
    url, received, status = webhook
    status["code"] = 500
    alert = notify.Alert(notify.RUN_FAILED, D2, "run-1", "skolon_pipeline: night 2026-11-21 FAILED", ("step x: boom",))
    config = load_notify(_notify_config(controller.port))
    problems = notify.send(alert, config, {"TEST_SMTP_PASSWORD": "wrong-" + PASSWORD, "TEST_WEBHOOK_URL": url})
    assert len(problems) == 2
    assert problems[0].startswith("notify.email: ") and "refused the login of 'roster'" in problems[0]
    assert problems[1] == "notify.webhook: the URL in TEST_WEBHOOK_URL answered 500 Internal Server Error"
    assert not any(PASSWORD in p or HOOK_TOKEN in p for p in problems)
    assert inbox.messages == [] and len(received) == 1
    assert notify.send(alert, config, {}) == [
        "notify.email: the SMTP password variable TEST_SMTP_PASSWORD is not set",
        "notify.webhook: the webhook URL variable TEST_WEBHOOK_URL is not set",
    ]


def test_a_failed_source_and_a_failed_run_say_what_happened_to_the_roster(tmp_path):
    sources = notify.alert_for_failed_run(
        tmp_path / "none.duckdb",
        D2,
        "r1",
        [("diagnostics__sources", "source 'norrby': file …/groups.json: not valid JSON")],
        "diagnostics__sources",
    )
    assert sources.event == notify.SOURCE_FAILED and "published, but a source FAILED" in sources.title
    assert "norrby" in sources.body() and "carried over" in sources.body()
    failed = notify.alert_for_failed_run(
        tmp_path / "none.duckdb",
        D2,
        "r2",
        [("rules__eligibility", "every source failed; nothing is published")],
        "diagnostics__sources",
    )
    assert failed.event == notify.RUN_FAILED and "step rules__eligibility: every source failed" in failed.body()
    assert f"skolon-pipeline run --as-of {D2}" in failed.body()


def load_notify(raw: dict):
    from skolon_pipeline.config import NotifyConfig

    return NotifyConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ({"starttls": False, "host": "smtp.lindby.example"}, "only over STARTTLS"),
        ({"to": ["not an address"]}, "is not an e-mail address"),
        ({"password_env": "X", "username": None}, "password_env needs a username"),
        ({"password": "in-the-file"}, "password"),
    ],
)
def test_notify_configuration_errors_name_the_key(tmp_path, email, message):
    reg = Registry()
    reg.teach(reg.school(), reg.group(reg.school()))
    reg.write(tmp_path / "data", drop_date=D1.isoformat())
    base = {
        "host": "smtp.lindby.example",
        "port": 587,
        "starttls": True,
        "from": "roster@lindby.example",
        "to": ["it@lindby.example"],
        "username": "roster",
        "password_env": "SMTP_PW",
    }
    _with_notify(tmp_path / "data", {"email": {**base, **email}})
    with pytest.raises(ConfigError, match=message):
        load_installation(tmp_path / "data")


def test_the_sensor_is_on_by_default_and_looks_twice_a_minute(tmp_path):
    from skolon_pipeline.config import Settings
    from skolon_pipeline.definitions import build_defs

    reg = Registry()
    reg.teach(reg.school(), reg.group(reg.school()))
    reg.write(tmp_path / "data", drop_date=D1.isoformat())
    defs = build_defs(Settings(tmp_path / "data", tmp_path / "w.duckdb", tmp_path / "ex"))
    for name in (ALERT_SENSOR, STALE_ALERT_SENSOR):  # failed runs, and green runs from a stale drop
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.minimum_interval_seconds <= 30


def _evaluate_stale_sensor_on_the_last_run(tmp_path, home: Path):
    return _evaluate_on_the_last_run(tmp_path, home, build_stale_drop_sensor, STALE_ALERT_SENSOR, failed=False)


@pytest.mark.slow  # two nights through the CLI and Dagster, the sensor after each
def test_a_night_from_a_stale_drop_sends_an_alert_naming_the_source_and_its_date(
    tmp_path, isolated, webhook, monkeypatch
):
    """The registry stopped exporting: the night publishes (the run is green, `run` exits 5), and the alert
    names the source, the drop's date and its age; a night from a fresh drop sends nothing."""
    url, received, _ = webhook
    reg = Registry()
    school = reg.school()
    students = [reg.student(school, given=f"Elevnamn{i}") for i in range(3)]
    reg.teach(school, reg.group(school, members=students))
    reg.write(tmp_path / "data", drop_date=D1.isoformat())
    _with_notify(tmp_path / "data", {"webhook": {"url_env": "TEST_WEBHOOK_URL"}})
    monkeypatch.setenv("TEST_WEBHOOK_URL", url)
    source = load_installation(tmp_path / "data").sources[0].id

    assert run_cli(tmp_path, "run", D1, export_dir="ex") == 0
    assert isinstance(_evaluate_stale_sensor_on_the_last_run(tmp_path, isolated), dg.SkipReason)
    assert received == []  # a fresh drop: no alert

    late = D1 + dt.timedelta(days=10)
    assert run_cli(tmp_path, "run", late, export_dir="ex") == cli.EXIT_STALE
    _evaluate_stale_sensor_on_the_last_run(tmp_path, isolated)
    assert len(received) == 1
    payload = received[0][1]
    assert payload["event"] == notify.SOURCE_STALE and payload["night"] == late.isoformat()
    assert f"source {source}: the newest drop is dated {D1}, 10 days before the night" in payload["text"]
    assert not any(s["givenName"] in json.dumps(payload) for s in students)


def _self_signed_for_localhost(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (made up here, valid for a day) and its key, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_the_login_goes_over_starttls_with_the_certificate_verified(tmp_path, monkeypatch):
    """starttls: true (the default): the client upgrades the connection, verifies the server's certificate
    against the trusted CAs, and only then logs in; a server whose certificate is not trusted gets no password."""
    import ssl

    cert_file, key_file = _self_signed_for_localhost(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    inbox = _Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=inbox.authenticate,
        tls_context=server_tls,
        require_starttls=True,
        auth_require_tls=True,
        auth_exclude_mechanism=["LOGIN"],
        ready_timeout=10,
    )
    controller.start()
    try:
        config = _notify_config(controller.port)
        config["email"]["starttls"] = True
        del config["webhook"]
        settings = NotifyConfig.model_validate(config)
        alert = notify.Alert(notify.RUN_FAILED, D1, "run-1", "skolon_pipeline: night 2026-11-20 FAILED", ("step x",))

        # Not trusted (the system's CAs only): the TLS handshake fails and no password is sent.
        problems = notify.send(alert, settings, {"TEST_SMTP_PASSWORD": PASSWORD})
        assert len(problems) == 1 and problems[0].startswith("notify.email: 127.0.0.1:")
        assert "CERTIFICATE_VERIFY_FAILED" in problems[0] and PASSWORD not in problems[0]
        assert inbox.logins == [] and inbox.messages == []

        # Trusted (SSL_CERT_FILE, as OpenSSL reads it): STARTTLS, then the login, then the message.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        assert notify.send(alert, settings, {"TEST_SMTP_PASSWORD": PASSWORD}) == []
        assert inbox.logins == [(b"roster", PASSWORD.encode())]
        assert len(inbox.messages) == 1 and "Subject: skolon_pipeline: night 2026-11-20 FAILED" in inbox.messages[0]
    finally:
        controller.stop()
