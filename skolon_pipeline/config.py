"""The installation's configuration: `$SKOLON_DATA_DIR/sources.yaml` (CONTRACT §1).

Loaded and validated once, before anything runs: an unknown key, a bad date or a duplicate source id is a
`ConfigError` whose message names the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from skolon_pipeline.bounds import MAX_CONFIG_BYTES, MAX_CONFIG_NODES, shorten

SOURCES_FILE = "sources.yaml"

DEFAULT_DATA_DIR = "data"
DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
DEFAULT_EXPORT_DIR = "data/exports"

# The first night the daily partitions offer unless sources.yaml sets `first_night` (CONTRACT §1).
DEFAULT_FIRST_NIGHT = dt.date(2015, 1, 1)


class ConfigError(ValueError):
    """sources.yaml (or a setting) is wrong; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HoldPeriod(_Strict):
    """A removal-hold period (inclusive): additions and updates publish, removals wait until after `to`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: dt.date = Field(alias="from")
    end: dt.date = Field(alias="to")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _strict_date(cls, value):
        return _iso_date(value)

    def model_post_init(self, _context) -> None:
        if self.end < self.start:
            raise ValueError(f"hold_removals period ends ({self.end}) before it starts ({self.start})")


def _iso_date(item):
    if isinstance(item, dt.date):
        return item
    try:
        if not (isinstance(item, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", item)):
            raise ValueError
        return dt.date.fromisoformat(item)
    except ValueError:
        raise ValueError(f"{item!r} is not a date (YYYY-MM-DD)") from None


class RuleOverrides(_Strict):
    """Any subset of the rules, as a source may override them."""

    lookahead_days: int | None = Field(default=None, ge=0, le=366)
    term_starts: tuple[dt.date, ...] | None = None
    teacher_requires_group: bool | None = None
    student_requires_group: bool | None = None
    group_types: tuple[str, ...] | None = None
    teaching_duty_roles: tuple[str, ...] | None = None
    school_email_domains: tuple[str, ...] | None = None
    # A newer drop is expected within this many days; an older one is DROP_STALE (the night still runs).
    max_drop_age_days: int | None = Field(default=None, ge=0, le=3650)
    # The mass-removal guard (skolon_pipeline.publish.guard) and removal-hold periods.
    max_removal_share: float | None = Field(default=None, ge=0, le=1)
    max_removal_share_week: float | None = Field(default=None, ge=0, le=1)
    max_change_share: float | None = Field(default=None, ge=0, le=1)
    hold_removals: tuple[HoldPeriod, ...] | None = None

    @field_validator("term_starts", mode="before")
    @classmethod
    def _strict_dates(cls, value):
        # YAML turns 2026-08-17 into a date already; a quoted string must still be an exact ISO date,
        # not something pydantic would coerce (a number of seconds, say).
        if value is None:
            return value
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of dates (YYYY-MM-DD)")
        return tuple(_iso_date(item) for item in value)

    @field_validator("school_email_domains")
    @classmethod
    def _lower_domains(cls, value):
        return None if value is None else tuple(d.strip().lower().lstrip("@") for d in value)


class Rules(RuleOverrides):
    """The eligibility rules' settings, every key with the default of CONTRACT §1."""

    lookahead_days: int = Field(default=30, ge=0, le=366)
    term_starts: tuple[dt.date, ...] = ()
    teacher_requires_group: bool = True
    student_requires_group: bool = False
    group_types: tuple[str, ...] = ("Klass", "Undervisning")
    teaching_duty_roles: tuple[str, ...] = (
        "Lärare",
        "Förstelärare",
        "Förskollärare",
        "Speciallärare/specialpedagog",
        "Fritidspedagog",
    )
    school_email_domains: tuple[str, ...] = ()
    max_drop_age_days: int = Field(default=3, ge=0, le=3650)
    max_removal_share: float = Field(default=0.10, ge=0, le=1)
    max_removal_share_week: float = Field(default=0.20, ge=0, le=1)
    max_change_share: float = Field(default=0.30, ge=0, le=1)
    hold_removals: tuple[HoldPeriod, ...] = ()

    def removal_hold_until(self, as_of: dt.date) -> dt.date | None:
        """The last day of the removal-hold period night `as_of` lies in (the latest, if several), else None."""
        ends = [p.end for p in self.hold_removals if p.start <= as_of <= p.end]
        return max(ends) if ends else None

    def with_overrides(self, overrides: RuleOverrides | None) -> Rules:
        if overrides is None:
            return self
        # Field values as parsed (model_dump would turn nested models such as HoldPeriod into dicts).
        update = {k: getattr(overrides, k) for k in type(overrides).model_fields if getattr(overrides, k) is not None}
        return self.model_copy(update=update)


# OneRoster role → the SS12000 duty role it stands for, so `teaching_duty_roles` decides which roles teach.
# A source may override any entry with `oneroster_roles`; a role mapped to nothing is not read as a duty.
DEFAULT_ONEROSTER_ROLES: dict[str, str] = {
    "teacher": "Lärare",
    "aide": "Lärarassistent",
    "proctor": "Annan personal",
    "counselor": "Kurator",
    "principal": "Rektor",
    "administrator": "Skoladministratör",
    "siteAdministrator": "Skoladministratör",
    "systemAdministrator": "Skoladministratör",
    "districtAdministrator": "Övrig arbetsledning",
}


class ArchiveLimits(_Strict):
    """What a zipped drop (OneRoster) may expand to, checked before anything is unpacked (sources.yaml
    `archives:`): the sum of its entries' sizes, and one entry's expanded/compressed ratio (judged only for
    entries above `ratio_floor_bytes`; CSV rarely packs better than 20:1, a zip bomb by 1000:1)."""

    max_expanded_bytes: int = Field(default=2 * 1024**3, ge=1)
    max_ratio: float = Field(default=200.0, gt=1)
    ratio_floor_bytes: int = Field(default=10 * 1024**2, ge=0)


_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _endpoint_url(value: str) -> str:
    """An https URL without credentials in it; plain http only on this machine (the local test server)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials (the secret is read from client_secret_env)")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        raise ValueError(f"{value!r}: use https (plain http only on 127.0.0.1/localhost)")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: no query or fragment")
    return value.rstrip("/")


class ApiConfig(_Strict):
    """A source pulled from its registry's SS12000 API every night (CONTRACT §1, the `api:` block)."""

    url: str
    token_url: str
    client_id: str = Field(min_length=1, max_length=256)
    client_secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)
    auth_method: Literal["client_secret_post", "client_secret_basic"] = "client_secret_post"
    scope: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    ca_bundle: str | None = None
    page_size: int = Field(default=1000, ge=1, le=100_000)
    full_every_days: int = Field(default=7, ge=1, le=366)
    timeout_minutes: float = Field(default=60, gt=0, le=24 * 60)

    @field_validator("url", "token_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _endpoint_url(value)

    def model_post_init(self, _context) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together (mutual TLS needs both)")


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def local_host(host: str | None) -> bool:
    """This machine (where plain http and an SMTP login without STARTTLS are allowed: the tests' servers)."""
    return host in _LOOPBACK_HOSTS


class EmailNotify(_Strict):
    """`notify.email`: one e-mail per alert over SMTP; the password only from the variable `password_env` names."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    from_: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
    to: tuple[str, ...] = Field(min_length=1, max_length=100)
    username: str | None = Field(default=None, min_length=1, max_length=320)
    password_env: str | None = Field(default=None, pattern=_ENV_NAME, max_length=128)

    @field_validator("to", mode="before")
    @classmethod
    def _addresses(cls, value):
        value = [value] if isinstance(value, str) else value
        for address in value or ():
            if not isinstance(address, str) or not re.fullmatch(r"[^@\s,]+@[^@\s,]+", address):
                raise ValueError(f"{shorten(repr(address), 80)} is not an e-mail address")
        return value

    def model_post_init(self, _context) -> None:
        if self.password_env and not self.username:
            raise ValueError("password_env needs a username")
        if self.username and not self.starttls and not local_host(self.host):
            raise ValueError("a login is sent only over STARTTLS (starttls: true), except to 127.0.0.1")


class WebhookNotify(_Strict):
    """`notify.webhook`: a JSON POST per alert; the URL (it carries the webhook's secret) only from `url_env`."""

    url_env: str = Field(pattern=_ENV_NAME, max_length=128)


class NotifyConfig(_Strict):
    """`notify:`: where held nights, failed sources and failed runs are reported (skolon_pipeline.notify)."""

    email: EmailNotify | None = None
    webhook: WebhookNotify | None = None


class SourceConfig(_Strict):
    id: str = Field(pattern=r"^[a-z0-9-]+$", max_length=64)
    format: Literal["ss12000", "oneroster"]
    path: str
    rules: RuleOverrides | None = None
    # Ids the same across sources (SS12000 UUIDs: default true) or only within the source (OneRoster
    # sourcedIds: default false, prefixed with `<source id>:` in the warehouse, CONTRACT §5).
    global_ids: bool | None = None
    # OneRoster only: role → SS12000 duty role (see DEFAULT_ONEROSTER_ROLES).
    oneroster_roles: dict[str, str] | None = None
    # Pulled from the registry's SS12000 API into `path` every night (format ss12000 only).
    api: ApiConfig | None = None

    @field_validator("oneroster_roles")
    @classmethod
    def _staff_roles_only(cls, value):
        if value and any(role in ("student", "parent", "guardian", "relative") for role in value):
            raise ValueError("student, parent, guardian and relative are not staff roles")
        return value

    @field_validator("id", mode="before")
    @classmethod
    def _plain_id(cls, value):
        # Source ids name files, Dagster assets and warehouse rows: nothing but a-z, 0-9 and '-'.
        if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9-]{1,64}", value):
            raise ValueError(f"{value!r} is not a source id: use 1-64 lower-case letters a-z, digits and '-'")
        return value

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        if re.search(r"[\x00-\x1f\x7f]", value):
            raise ValueError(f"{value!r} contains control characters")
        p = Path(value)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"{value!r} must be a path inside the data directory (relative, without '..')")
        return value


class SourcesFile(_Strict):
    timezone: str = "Europe/Stockholm"
    # The first night the daily partitions offer; earlier nights are refused (CONTRACT §1).
    first_night: dt.date = DEFAULT_FIRST_NIGHT
    rules: Rules = Rules()
    archives: ArchiveLimits = ArchiveLimits()
    notify: NotifyConfig | None = None
    sources: tuple[SourceConfig, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a name too long for a file
            raise ValueError(f"unknown time zone {shorten(repr(value), 80)}") from exc
        return value

    @field_validator("first_night", mode="before")
    @classmethod
    def _strict_first_night(cls, value):
        return _iso_date(value)

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, value):
        seen: set[str] = set()
        for n, source in enumerate(value):
            if source.id in seen:
                raise ValueError(f"duplicate source id {source.id!r}")
            if source.oneroster_roles is not None and source.format != "oneroster":
                raise ValueError(f"sources[{n}].oneroster_roles: only for format oneroster")
            if source.api is not None and source.format != "ss12000":
                raise ValueError(f"sources[{n}].api: only for format ss12000")
            seen.add(source.id)
        return value


@dataclass(frozen=True)
class Source:
    """One configured registry with its effective rules and its resolved drop folder."""

    id: str
    format: str
    root: Path
    rules: Rules
    global_ids: bool = True
    oneroster_roles: tuple[tuple[str, str], ...] = ()
    archive_limits: ArchiveLimits = ArchiveLimits()
    api: ApiConfig | None = None  # pulled from the registry's API (skolon_pipeline.pull)

    @property
    def id_prefix(self) -> str:
        """Prepended to every id the source sends: nothing for global ids, `<source id>:` otherwise."""
        return "" if self.global_ids else f"{self.id}:"


@dataclass(frozen=True)
class Installation:
    timezone: str
    rules: Rules
    sources: tuple[Source, ...]
    data_dir: Path
    first_night: dt.date = DEFAULT_FIRST_NIGHT
    notify: NotifyConfig | None = None  # alerts (skolon_pipeline.notify); None: none are sent

    def source(self, source_id: str) -> Source:
        for s in self.sources:
            if s.id == source_id:
                return s
        raise KeyError(source_id)


def _key_path(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts)


def _explain(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = _key_path(e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        else:
            lines.append(f"{key}: {e['msg'].removeprefix('Value error, ')}")
    # A message may repeat the bad value: each is cut short, so a huge value never becomes a huge message.
    return "; ".join(shorten(line, 200) for line in lines)


def resolve_source_root(data_dir: Path, relative: str) -> Path:
    """The drop folder of a source, refusing anything that would leave the data directory (links included)."""
    base = data_dir.resolve()
    root = (data_dir / relative).resolve()
    if root != base and base not in root.parents:
        raise ConfigError(f"source path {relative!r} points outside the data directory {data_dir}")
    return root


def _expanded_nodes(root: yaml.Node, limit: int) -> int:
    """How many nodes the document has once every alias is expanded (each alias repeats its anchor's whole
    subtree), counted without expanding anything: a shared node's size is computed once. Stops above `limit`."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            sizes[key] = 1
            continue
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > limit:
                return sizes[key]
            continue
        if key in on_path:
            raise ConfigError("an alias refers to itself")
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                raise ConfigError("an alias refers to itself")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _load_yaml(text: str, path: Path):
    """`yaml.safe_load`, refusing documents whose aliases expand beyond MAX_CONFIG_NODES ("billion laughs": a
    600-byte file can stand for gigabytes) before anything is built from them."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes = _expanded_nodes(node, MAX_CONFIG_NODES)
        if nodes > MAX_CONFIG_NODES:
            raise ConfigError(f"{path}: its aliases expand to more than {MAX_CONFIG_NODES} values; refused")
        return loader.construct_document(node)
    except ConfigError as exc:
        raise ConfigError(shorten(f"{path}: {exc}" if not str(exc).startswith(str(path)) else exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(shorten(f"{path}: not valid YAML: {exc}")) from exc
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    finally:
        loader.dispose()


def _resolve_api_files(data_dir: Path, api: ApiConfig | None) -> ApiConfig | None:
    """Certificate, key and CA paths relative to the data directory become absolute; absolute ones stay."""
    if api is None:
        return None
    update = {
        k: str((data_dir / v).absolute())
        for k in ("client_cert", "client_key", "ca_bundle")
        if (v := getattr(api, k)) is not None and not Path(v).is_absolute()
    }
    return api.model_copy(update=update)


def load_installation(data_dir: Path | str) -> Installation:
    data_dir = Path(data_dir)
    path = data_dir / SOURCES_FILE
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: not found (set SKOLON_DATA_DIR or --data-dir to the folder holding it)") from exc
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size} bytes; a configuration file is at most {MAX_CONFIG_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    raw = _load_yaml(text, path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping with 'sources'")
    try:
        parsed = SourcesFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(shorten(f"{path}: {_explain(exc)}", 1000)) from exc
    sources = tuple(
        Source(
            id=s.id,
            format=s.format,
            root=resolve_source_root(data_dir, s.path),
            rules=parsed.rules.with_overrides(s.rules),
            global_ids=s.global_ids if s.global_ids is not None else s.format == "ss12000",
            oneroster_roles=tuple(sorted({**DEFAULT_ONEROSTER_ROLES, **(s.oneroster_roles or {})}.items())),
            archive_limits=parsed.archives,
            api=_resolve_api_files(data_dir, s.api),
        )
        for s in parsed.sources
    )
    return Installation(
        timezone=parsed.timezone,
        rules=parsed.rules,
        sources=sources,
        data_dir=data_dir,
        first_night=parsed.first_night,
        notify=parsed.notify,
    )


# Settings field → (environment variable, default) (CONTRACT §1)
SETTINGS_ENV: dict[str, tuple[str, str]] = {
    "data_dir": ("SKOLON_DATA_DIR", DEFAULT_DATA_DIR),
    "warehouse": ("SKOLON_WAREHOUSE", DEFAULT_WAREHOUSE),
    "export_dir": ("SKOLON_EXPORT_DIR", DEFAULT_EXPORT_DIR),
}


@dataclass(frozen=True)
class Settings:
    """Where things live (CONTRACT §1). Built once per command from its flags and the environment, and handed
    to every step (the Dagster resource, the job's reconstructable arguments); nothing reads the environment
    for these paths after that, and nothing writes it."""

    data_dir: Path
    warehouse: Path
    export_dir: Path

    @classmethod
    def resolve(
        cls,
        data_dir: str | Path | None = None,
        warehouse: str | Path | None = None,
        export_dir: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """A flag given (made absolute, so step processes started elsewhere find the same folders), else the
        environment variable, else the contract's default."""
        env = os.environ if environ is None else environ
        flags = {"data_dir": data_dir, "warehouse": warehouse, "export_dir": export_dir}
        return cls(
            **{
                field: Path(flags[field]).absolute() if flags[field] else Path(env.get(var, default))
                for field, (var, default) in SETTINGS_ENV.items()
            }
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return cls.resolve(environ=environ)

    @property
    def staging_dir(self) -> Path:
        """Per-night, per-source working files live beside the warehouse, never in the export folder."""
        return self.warehouse.parent / "staging"
