"""Civic numbers: validated, normalised and replaced by a keyed hash before anything is stored.

A reader puts the registry's civic numbers in the TEMPORARY table `civic_numbers(person_id, raw, nationality)`
(temporary tables live in memory, never in the staging file); `pseudonymise` checks them (`civic.sql`), writes
`INVALID_CIVIC_NO` / `CIVIC_NO_NORMALISED` warnings, stores HMAC-SHA256(key, 12-digit form) as hex in
`persons.civic_no_hash`, and drops the temporary tables. The same person gets the same hash every night and in
every source as long as the key stays the same; without the key the hash cannot be turned back into the number
(nor checked against a guessed one).

The key is `SKOLON_PSEUDONYM_KEY` (at least 32 characters). Without it, a built-in demo key is used and the
extract step says so in a warning: fine for the demo, never for real registries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from importlib import resources

import duckdb

from skolon_pipeline.config import ConfigError

KEY_ENV = "SKOLON_PSEUDONYM_KEY"
MIN_KEY_LENGTH = 32
# Public, so it protects nothing: only for the made-up demo registry.
_DEMO_KEY = "skolon-pipeline demo pseudonym key: NOT SECRET, set SKOLON_PSEUDONYM_KEY"
DEMO_KEY_WARNING = (
    f"{KEY_ENV} is not set: civic numbers are hashed with the built-in demo key, which is public. "
    "Fine for the demo registry; set a secret key of your own before reading a real one."
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

    @classmethod
    def from_secret(cls, secret: str | bytes, is_demo: bool = False) -> PseudonymKey:
        key = secret.encode("utf-8") if isinstance(secret, str) else secret
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        return cls(bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key), is_demo)

    def __repr__(self) -> str:  # never print the key material
        return f"PseudonymKey(is_demo={self.is_demo})"


def pseudonym_key(environ: dict[str, str] | None = None) -> PseudonymKey:
    """The installation's key from `SKOLON_PSEUDONYM_KEY`, or the demo key when it is not set."""
    env = os.environ if environ is None else environ
    secret = env.get(KEY_ENV)
    if secret is None or secret == "":
        return PseudonymKey.from_secret(_DEMO_KEY, is_demo=True)
    if len(secret) < MIN_KEY_LENGTH:
        raise ConfigError(f"{KEY_ENV} is too short: use a random secret of at least {MIN_KEY_LENGTH} characters")
    return PseudonymKey.from_secret(secret)


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
