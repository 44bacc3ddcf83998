"""School Admin accounts: `$SKOLON_DATA_DIR/admins.yaml`, managed by `skolon-pipeline admin add/remove/list`.

```yaml
admins:
  - username: rektor.lindbyskolan
    schools: ["25083676"]            # school unit codes or school ids (a school admin: one school or a few)
    password: $argon2id$v=19$m=65536,t=3,p=4$...   # Argon2id (argon2-cffi); never the password itself
    created: 2025-12-15T08:00:00+00:00
  - username: it.lindby
    authority: 1647c2af-9a49-5791-b3d8-c2b85229318b   # organisation id of the school authority (Huvudman)
    password: $argon2id$...
oidc: {...}                          # optional, see oidc.py
```

The file is owner-only (0600, written whole: beside it, then renamed); the web view refuses to start when
others may read it. An account's scope is what `scope.Scope` says; the web view re-reads the file when it
changes, so removing an account or changing its password ends its sessions at the next request.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from skolon_pipeline.files import FILE_MODE, private_dir
from skolon_pipeline.serve.scope import Scope

FILE_NAME = "admins.yaml"
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_hasher = PasswordHasher()


@functools.cache
def dummy_hash() -> str:
    """Verified when the username does not exist, so a wrong username takes as long as a wrong password. Made on
    first use, not on import: every command imports this module (the CLI's `admin` commands), and an Argon2 hash
    is 0.13 s of each one's start-up, `run` included. The web view makes it when it starts (create_app), so the
    first login with an unknown username takes as long as the others."""
    return _hasher.hash("not a password of anyone")


class AccountError(ValueError):
    """A bad username, password, scope or admins.yaml; the message says which."""


@dataclass(frozen=True)
class Account:
    username: str
    scope: Scope
    password_hash: str | None = None  # None: an identity-provider login (OIDC), no local password
    created: str | None = None

    @property
    def session_version(self) -> str:
        """Changes when the password does: a session carries it, so a new password ends old sessions."""
        return hashlib.sha256((self.password_hash or self.username).encode()).hexdigest()[:16]


@dataclass
class Admins:
    accounts: dict[str, Account] = field(default_factory=dict)
    oidc: dict | None = None


def path_in(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise AccountError(f"username {username!r}: use 1-64 of a-z, 0-9, '.', '_', '@', '-'")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password may have at most {MAX_PASSWORD} characters")
    return password


def _scope_of(entry: dict, where: str) -> Scope:
    authority, schools = entry.get("authority"), entry.get("schools") or []
    if not isinstance(schools, list) or not all(isinstance(s, str | int) for s in schools):
        raise AccountError(f"{where}: schools must be a list of school unit codes or ids")
    try:
        return Scope(authority=str(authority) if authority else None, schools=tuple(str(s) for s in schools))
    except ValueError as exc:
        raise AccountError(f"{where}: {exc}") from None


def load(path: Path) -> Admins:
    """The accounts of admins.yaml (none when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return Admins()
    if len(path.read_bytes()) > 1_000_000:
        raise AccountError(f"{path}: larger than 1 MB")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AccountError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("admins", []), list):
        raise AccountError(f"{path}: expected a mapping with a list `admins`")
    admins = Admins(oidc=data.get("oidc"))
    for n, entry in enumerate(data.get("admins") or []):
        where = f"{path}: admins[{n}]"
        if not isinstance(entry, dict) or "username" not in entry:
            raise AccountError(f"{where}: expected a mapping with username")
        username = check_username(str(entry["username"]))
        admins.accounts[username] = Account(
            username,
            _scope_of(entry, where),
            entry.get("password"),
            str(entry["created"]) if entry.get("created") else None,
        )
    return admins


def check_private(path: Path) -> None:
    """admins.yaml holds password hashes: refuse it when anyone but its owner may read or write it."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise AccountError(f"{path} may be read by others (mode {mode:o}): run `chmod 600 {path}`")


def save(path: Path, admins: Admins) -> None:
    entries = []
    for a in sorted(admins.accounts.values(), key=lambda a: a.username):
        entry: dict = {"username": a.username}
        if a.scope.authority:
            entry["authority"] = a.scope.authority
        else:
            entry["schools"] = list(a.scope.schools)
        if a.password_hash:
            entry["password"] = a.password_hash
        if a.created:
            entry["created"] = a.created
        entries.append(entry)
    data: dict = {"admins": entries}
    if admins.oidc:
        data["oidc"] = admins.oidc
    path = Path(path)
    private_dir(path.parent, owned=False)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# School Admin accounts: `skolon-pipeline admin add/remove/list` (docs/school-admin.md)\n")
        yaml.safe_dump(data, f, allow_unicode=True, sort_keys=False)
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)


def add(path: Path, username: str, scope: Scope, password: str) -> tuple[Account, bool]:
    """Adds the account, or replaces its scope and password; returns it and whether it existed."""
    username = check_username(username)
    admins = load(path)
    existed = username in admins.accounts
    account = Account(
        username,
        scope,
        _hasher.hash(check_password(password)),
        dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    )
    admins.accounts[username] = account
    save(path, admins)
    return account, existed


def remove(path: Path, username: str) -> None:
    username = check_username(username)
    admins = load(path)
    if username not in admins.accounts:
        raise AccountError(f"no admin account {username!r}")
    del admins.accounts[username]
    save(path, admins)


def verify(admins: Admins, username: str, password: str) -> Account | None:
    """The account when the password is right; None otherwise (also for an unknown username, after as long)."""
    try:
        name = check_username(username)
    except AccountError:
        name = None
    account = admins.accounts.get(name) if name else None
    stored = account.password_hash if account else None
    try:
        _hasher.verify(stored or dummy_hash(), password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    return account if stored else None


def start_session(session: dict, account: Account) -> None:
    """A new session (and CSRF token) at every login: no fixation."""
    session.clear()
    now = int(time.time())
    session.update(
        {
            "user": account.username,
            "ver": account.session_version,
            "login_at": now,
            "seen": now,
            "csrf": secrets.token_urlsafe(32),
        }
    )
