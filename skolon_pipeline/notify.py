"""Alerts for the people who run the sync: a night held by the guard, a failed source, a failed run.

Built from what the run and the warehouse say (`alert_for_failed_run`) and sent to `notify:` in sources.yaml
(`send`): an e-mail over SMTP (STARTTLS, a login whose password is read from `password_env`) and/or a JSON
POST to a webhook whose URL is read from `url_env` (Teams, Slack and Mattermost incoming webhooks show its
`text`). Dagster's sensors call them (`defs/alerts.py`). An alert holds night, run, counts, source ids, step
names and the commands to run, never a name, an e-mail address or a civic number: the guard's reasons and the
steps' error lines name ids and counts only, and every line is one printable line cut at 400 characters. The
password and the webhook URL (which carries the webhook's own secret) appear in no message, log or metadata.
"""

from __future__ import annotations

import datetime as dt
import os
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from skolon_pipeline import text
from skolon_pipeline.config import EmailNotify, NotifyConfig, WebhookNotify, local_host

NIGHT_HELD, SOURCE_FAILED, SOURCE_STALE, RUN_FAILED = "night_held", "source_failed", "source_stale", "run_failed"
LINE_LIMIT = 400
TIMEOUT_SECONDS = 30


class NotifyError(Exception):
    """An alert could not be delivered; the message names the channel and the cause, never a secret."""


@dataclass(frozen=True)
class Alert:
    event: str  # NIGHT_HELD, SOURCE_FAILED, SOURCE_STALE or RUN_FAILED
    night: dt.date
    run_id: str
    title: str
    lines: tuple[str, ...]

    def body(self) -> str:
        return "\n".join([self.title, "", *self.lines, "", f"Dagster run {self.run_id}"])

    def payload(self) -> dict:
        """The webhook's JSON: `text` for chat tools' incoming webhooks, the fields for everything else."""
        return {
            "text": self.body(),
            "event": self.event,
            "night": self.night.isoformat(),
            "run_id": self.run_id,
            "title": self.title,
            "lines": list(self.lines),
        }


def _line(value: object) -> str:
    return text.one_line(value, LINE_LIMIT)


def alert_for_failed_run(
    warehouse: Path, night: dt.date, run_id: str, failures: Sequence[tuple[str, str]], sources_step: str
) -> Alert:
    """What a failed nightly run means for the roster: held by the guard (the run's check failed and the night is
    recorded as held), published with a failed source (only `diagnostics/sources` failed), or failed."""
    from skolon_pipeline.publish import publish, snapshot

    reasons = None
    if Path(warehouse).is_file():
        with snapshot.connect_published(warehouse) as con:
            reasons = publish.held_run(con, night, run_id)
    if reasons is not None:
        return Alert(
            NIGHT_HELD,
            night,
            run_id,
            f"skolon_pipeline: night {night} HELD by the mass-removal guard",
            (
                *(_line(r) for r in reasons),
                "Nothing of it was published; the previous roster and validation files stay as they were.",
                f"Review: SELECT * FROM history.held_changes WHERE as_of = DATE '{night.isoformat()}' AND change = 'removed';",
                f"If the registry is right, publish it: skolon-pipeline approve --as-of {night}",
            ),
        )
    if failures and all(step == sources_step for step, _ in failures):
        return Alert(
            SOURCE_FAILED,
            night,
            run_id,
            f"skolon_pipeline: night {night} published, but a source FAILED",
            (
                *(_line(message) for _, message in failures),
                "The failed source's last published roster is carried over (stale_since); the others are up to date.",
            ),
        )
    return Alert(
        RUN_FAILED,
        night,
        run_id,
        f"skolon_pipeline: night {night} FAILED",
        (
            *(_line(f"step {step}: {message}") for step, message in failures),
            "Unless a step after publishing failed, nothing of the night was published; the previous roster stays.",
            f"Run it again once the cause is fixed: skolon-pipeline run --as-of {night}",
        ),
    )


def alert_for_stale_sources(warehouse: Path, night: dt.date, run_id: str) -> Alert | None:
    """A night that published from a drop older than its source's max_drop_age_days (DROP_STALE): the run is
    green, but the registry may have stopped exporting. None when every source's drop was fresh."""
    from skolon_pipeline.publish import snapshot

    if not Path(warehouse).is_file():
        return None
    with snapshot.connect_published(warehouse) as con:
        stale = con.execute(
            "SELECT source_id, drop_date, drop_age_days, max_drop_age_days FROM diagnostics.source_drops "
            "WHERE as_of = ? AND status = 'stale' ORDER BY source_id",
            [night],
        ).fetchall()
    if not stale:
        return None
    return Alert(
        SOURCE_STALE,
        night,
        run_id,
        f"skolon_pipeline: night {night} published from a STALE drop",
        (
            *(
                _line(
                    f"source {source}: the newest drop is dated {drop_date}, {age} days before the night "
                    f"(max_drop_age_days {limit})"
                )
                for source, drop_date, age, limit in stale
            ),
            "The registry may have stopped exporting: the roster shows its state of that date.",
            "Check the registry's export (or its API pull) and the drop folder.",
        ),
    )


def send(alert: Alert, notify: NotifyConfig, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Delivers the alert to every configured channel; returns one line per channel that failed (the others are
    still tried)."""
    problems = []
    for channel, deliver in (("email", _send_email), ("webhook", _post_webhook)):
        config = getattr(notify, channel)
        if config is None:
            continue
        try:
            deliver(alert, config, environ)
        except NotifyError as exc:
            problems.append(f"notify.{channel}: {exc}")
    return problems


def _secret(environ: Mapping[str, str], name: str, what: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise NotifyError(f"{what} variable {name} is not set")
    return value


def _send_email(alert: Alert, config: EmailNotify, environ: Mapping[str, str]) -> None:
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = config.from_
    message["To"] = ", ".join(config.to)
    message.set_content(alert.body())
    password = _secret(environ, config.password_env, "the SMTP password") if config.password_env else None
    try:
        with smtplib.SMTP(config.host, config.port, timeout=TIMEOUT_SECONDS) as smtp:
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.username:
                smtp.login(config.username, password or "")
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError(
            f"{config.host}:{config.port} refused the login of {config.username!r} ({exc.smtp_code})"
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        # smtplib's messages hold the server's answer, never what the client sent (the password included).
        raise NotifyError(f"{config.host}:{config.port}: {_line(type(exc).__name__ + ': ' + str(exc))}") from None


def _post_webhook(alert: Alert, config: WebhookNotify, environ: Mapping[str, str]) -> None:
    import httpx  # here: every night loads the alert sensors' module, few send to a webhook (0.06 s of start-up)

    url = _secret(environ, config.url_env, "the webhook URL")
    parsed = httpx.URL(url)
    if parsed.scheme != "https" and not (parsed.scheme == "http" and local_host(parsed.host)):
        raise NotifyError(f"the URL in {config.url_env} must be https (http only on 127.0.0.1)")
    try:
        response = httpx.post(url, json=alert.payload(), timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise NotifyError(f"POST to the URL in {config.url_env} failed: {type(exc).__name__}") from None
    if response.status_code >= 300:
        raise NotifyError(f"the URL in {config.url_env} answered {response.status_code} {response.reason_phrase}")
