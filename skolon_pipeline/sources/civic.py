"""Civic numbers: validated, normalised and replaced by a keyed hash before anything is stored.

A reader puts the registry's civic numbers in the TEMPORARY table `civic_numbers(person_id, raw, nationality)`
(temporary tables live in memory, never in the staging file); `pseudonymise` checks them (`civic.sql`), writes
`INVALID_CIVIC_NO` / `CIVIC_NO_NORMALISED` warnings, stores HMAC-SHA256(key, 12-digit form) as hex in
`persons.civic_no_hash`, and drops the temporary tables. The same person gets the same hash every night and in
every source as long as the key stays the same; without the key the hash cannot be turned back into the number
(nor checked against a guessed one).

The key is `SKOLON_PSEUDONYM_KEY` (at least 32 characters) when it is set. Otherwise the first run creates a
random key in `pseudonym.key` beside the warehouse (0600) and every later run uses it: back it up with the
warehouse (a new key gives everyone new hashes). The built-in, public demo key is used only for the shipped
demo drop, which says so in a marker file (`DEMO_MARKER`) that `skolon_pipeline.demo` writes: real civic
numbers are never hashed with a key anyone can read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from skolon_pipeline.config import ConfigError

KEY_ENV = "SKOLON_PSEUDONYM_KEY"
MIN_KEY_LENGTH = 32
# Public, so it protects nothing: only for the made-up demo registry.
_DEMO_KEY = "skolon-pipeline demo pseudonym key: NOT SECRET, set SKOLON_PSEUDONYM_KEY"
DEMO_KEY_WARNING = (
    f"{KEY_ENV} is not set: the shipped demo drop's civic numbers are hashed with the built-in demo key, "
    "which is public (any other drop gets the installation's own key)."
)
# Beside the warehouse: created on the first run without SKOLON_PSEUDONYM_KEY.
KEY_FILE = "pseudonym.key"
KEY_CREATED_WARNING = (
    f"{KEY_ENV} is not set: created a random pseudonym key in {{path}} (owner-only). Back it up with the "
    "warehouse: without it, the same people get new civic number hashes."
)
# In the shipped demo drop's folder only (skolon_pipeline.demo writes it): the drop is made up.
DEMO_MARKER = "MADE-UP-DEMO-DATA.txt"
DEMO_MARKER_TEXT = (
    "Everything in this registry drop is made up (skolon_pipeline.demo).\n"
    "Its civic numbers are hashed with the public demo key; a real registry's never are.\n"
)

INVALID_CIVIC_NO = "INVALID_CIVIC_NO"
CIVIC_NO_NORMALISED = "CIVIC_NO_NORMALISED"

_BLOCK = 64  # SHA-256 block size, bytes


@dataclass(frozen=True)
class PseudonymKey:
    """The HMAC key as its inner and outer pads (RFC 2104), ready to be passed to DuckDB as parameters."""

    inner: bytes
    outer: bytes
    is_demo: bool
    origin: str = KEY_ENV  # where the key came from, for metadata: the variable, the key file, or "demo"
    created: bool = False  # this call created the key file

    @classmethod
    def from_secret(
        cls, secret: str | bytes, is_demo: bool = False, origin: str = KEY_ENV, created: bool = False
    ) -> PseudonymKey:
        key = secret.encode("utf-8") if isinstance(secret, str) else secret
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        return cls(bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key), is_demo, origin, created)

    def __repr__(self) -> str:  # never print the key material
        return f"PseudonymKey(is_demo={self.is_demo}, origin={self.origin!r})"


def is_demo_drop(drop_dir: Path) -> bool:
    """The shipped, made-up demo drop (its marker file, as skolon_pipeline.demo writes it)."""
    marker = Path(drop_dir) / DEMO_MARKER
    try:
        return (
            marker.is_file() and marker.stat().st_size < 4096 and marker.read_text(encoding="utf-8") == DEMO_MARKER_TEXT
        )
    except (OSError, UnicodeDecodeError):
        return False


def _read_key_file(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path}: the pseudonym key is readable by others (mode {mode:o}); chmod 600 it")
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < MIN_KEY_LENGTH:
        raise ConfigError(f"{path}: not a pseudonym key (at least {MIN_KEY_LENGTH} characters)")
    return secret


def _create_key_file(path: Path) -> bool:
    """Writes a new random key to `path` unless one exists; True when this call created it. Two sources
    extracted at once agree on one key: the file appears whole (written aside, then linked) and only once."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)


def pseudonym_key(
    environ: dict[str, str] | None = None, key_file: Path | None = None, demo_drop: bool = False
) -> PseudonymKey:
    """The installation's key: `SKOLON_PSEUDONYM_KEY` when set; else the public demo key for the shipped demo
    drop (`demo_drop`); else the key in `key_file`, created (random, 0600) on first use."""
    env = os.environ if environ is None else environ
    secret = env.get(KEY_ENV)
    if secret:
        if len(secret) < MIN_KEY_LENGTH:
            raise ConfigError(f"{KEY_ENV} is too short: use a random secret of at least {MIN_KEY_LENGTH} characters")
        return PseudonymKey.from_secret(secret)
    if demo_drop:
        return PseudonymKey.from_secret(_DEMO_KEY, is_demo=True, origin="built-in demo key")
    if key_file is None:
        raise ConfigError(f"{KEY_ENV} is not set and no key file is given: civic numbers cannot be hashed")
    key_file = Path(key_file)
    created = False if key_file.exists() else _create_key_file(key_file)
    return PseudonymKey.from_secret(_read_key_file(key_file), origin=str(key_file), created=created)


def pseudonymise(con: duckdb.DuckDBPyConnection, source_id: str, night: dt.date, key: PseudonymKey) -> None:
    """Fills `persons.civic_no_hash` from the temporary `civic_numbers` (absent: no civic numbers)."""
    con.execute("ALTER TABLE persons ADD COLUMN IF NOT EXISTS civic_no_hash VARCHAR")
    con.execute("CREATE TEMP TABLE IF NOT EXISTS civic_numbers (person_id VARCHAR, raw VARCHAR, nationality VARCHAR)")
    con.execute("SET VARIABLE source_id = ?", [source_id])
    con.execute("SET VARIABLE civic_reference = ?", [night])
    con.execute(resources.files("skolon_pipeline.sources").joinpath("civic.sql").read_text(encoding="utf-8"))
    # HMAC-SHA256 = H((K ^ opad) || H((K ^ ipad) || message)); the pads are parameters, never SQL text.
    con.execute(
        """
        UPDATE persons SET civic_no_hash = sha256(?::BLOB || unhex(sha256(?::BLOB || encode(c.normalised))))
        FROM civic_checked c
        WHERE c.person_id = persons.person_id AND c.normalised IS NOT NULL
        """,
        [key.outer, key.inner],
    )
    con.execute("DROP TABLE civic_checked")
    con.execute("DROP TABLE civic_numbers")
    con.execute("RESET VARIABLE civic_reference")


def hash_civic_no(normalised: str, key: PseudonymKey) -> str:
    """The hash of one 12-character civic number, as `pseudonymise` computes it (for tests and look-ups)."""
    inner = hashlib.sha256(key.inner + normalised.encode("utf-8")).digest()
    return hashlib.sha256(key.outer + inner).hexdigest()
