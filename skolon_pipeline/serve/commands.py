"""`skolon-pipeline serve` and `skolon-pipeline admin add|remove|list|access` (CONTRACT §6)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

import duckdb

from skolon_pipeline.serve import accounts
from skolon_pipeline.serve.scope import Scope

EXIT_FAILED = 1
EXIT_USAGE = 2
# The web view runs at this CPU priority (nice; 19 is the lowest), so the nightly run (normally at 0) has the
# CPU first: with pages rendered one at a time on one DuckDB thread (AppSettings), 50 open sessions cost a run
# a few per cent. On an otherwise idle machine the priority changes nothing.
SERVE_NICENESS = 10


def lower_priority(niceness: int = SERVE_NICENESS) -> int:
    """This process at `niceness` at least (never raised: an operator's higher value stays); before any thread
    starts, so DuckDB's and the thread pool's threads inherit it. The niceness now."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current < niceness:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    return os.getpriority(os.PRIO_PROCESS, 0)


def _settings(args):
    """The installation's settings from the location flags, as the CLI reads them (it hands its reader over as
    `args.settings_of`, so this module does not import the CLI)."""
    return args.settings_of(args)


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from skolon_pipeline.serve.app import AppSettings, create_app

    lower_priority(args.nice)
    settings = _settings(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(AppSettings(warehouse=settings.warehouse, data_dir=settings.data_dir))
        admins = accounts.load(accounts.path_in(settings.data_dir))
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not admins.accounts and not admins.oidc:
        print(
            "note: no admin accounts yet: add one with `skolon-pipeline admin add USERNAME --school CODE`",
            file=sys.stderr,
        )
    print(f"School Admin on http://{args.host}:{args.port}/ (warehouse {settings.warehouse}, read-only)", flush=True)
    # uvicorn's access log would print query strings (a search is a name): the app logs requests without them.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=False,
        proxy_headers=True,
        log_level="warning",
        server_header=False,
    )
    return 0


def _schools_matching(warehouse: Path, scope: Scope) -> list[tuple[str, str, str]] | None:
    """(school id, code, name) of the scope's schools in any published night; None without a warehouse."""
    if not warehouse.exists():
        return None
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute(
                """SELECT DISTINCT school_id, school_unit_code, name FROM history.schools
                   WHERE organisation_id = $a OR list_contains($ids, school_id) OR list_contains($codes, school_unit_code)
                   ORDER BY name""",
                {"a": scope.authority, "ids": [s.lower() for s in scope.schools], "codes": list(scope.schools)},
            ).fetchall()
    except duckdb.CatalogException:
        return None
    except duckdb.IOException:
        print("note: the warehouse is being written by a run; the scope was not checked", file=sys.stderr)
        return None


def _read_password(args) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise accounts.AccountError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        raise accounts.AccountError("the passwords differ")
    return first


def cmd_admin_add(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        scope = Scope(authority=args.authority, schools=tuple(args.school or ()))
        accounts.check_username(args.username)
        found = _schools_matching(settings.warehouse, scope)
        if found is not None and not found:
            what = f"school authority {scope.authority}" if scope.authority else "school " + ", ".join(scope.schools)
            raise accounts.AccountError(
                f"no published night has the {what} (give a school unit code or id, or an authority's organisation id)"
            )
        if scope.schools and found is not None:
            named = {v for s in found for v in (s[0], s[1]) if v}
            missing = [s for s in scope.schools if s not in named and s.lower() not in named]
            if missing:
                raise accounts.AccountError(f"no published night has the school(s) {', '.join(missing)}")
        account, existed = accounts.add(accounts.path_in(settings.data_dir), args.username, scope, _read_password(args))
    except (accounts.AccountError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{'updated' if existed else 'added'} {account.username}: {scope.describe()}")
    if found:
        for school_id, code, name in found:
            print(f"  {name} ({code or school_id})")
    elif found is None:
        print("  (no warehouse yet: the scope is checked when one exists)")
    return 0


def cmd_admin_remove(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        accounts.remove(accounts.path_in(settings.data_dir), args.username)
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"removed {args.username}; its sessions end at their next request")
    return 0


def cmd_admin_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        admins = accounts.load(accounts.path_in(settings.data_dir))
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not admins.accounts:
        print("no admin accounts")
    for a in sorted(admins.accounts.values(), key=lambda a: a.username):
        print(f"{a.username}\t{a.scope.describe()}\t{a.created or ''}")
    if admins.oidc:
        print(f"identity provider login: {len(admins.oidc.get('scopes') or {})} mapped claim value(s)")
    return 0


def cmd_admin_access(args: argparse.Namespace) -> int:
    """Who viewed a person's or group's page, and when (for a data-subject access request)."""
    from skolon_pipeline.serve.app import ACCESS_LOG

    settings = _settings(args)
    path = settings.data_dir / ACCESS_LOG
    wanted = args.id.strip().lower()
    n = 0
    if path.exists():
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if entry.get("id") == wanted:
                    n += 1
                    print(
                        f"{entry['time']}\t{entry['user']}\t{entry['page']}\t{'shown' if entry.get('found') else 'not found'}"
                    )
    if not n:
        print(f"nobody has opened a page of {wanted}")
    return 0


def add_commands(sub, locations: argparse.ArgumentParser, settings_of) -> None:
    """The serve and admin commands; `locations` is the CLI's parent parser of the location flags and
    `settings_of` builds the command's one Settings object from them."""
    serve = sub.add_parser("serve", parents=[locations], help="serve the School Admin web view (read-only)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument(
        "--nice",
        type=int,
        default=SERVE_NICENESS,
        metavar="N",
        help=f"CPU priority (niceness) to serve at, at least (default {SERVE_NICENESS}: the nightly run "
        "has the CPU first; 0 keeps the priority it was started with)",
    )
    serve.set_defaults(func=cmd_serve, settings_of=settings_of)

    admin = sub.add_parser("admin", help="School Admin accounts ($SKOLON_DATA_DIR/admins.yaml)")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    add = admin_sub.add_parser("add", parents=[locations], help="add an account (or change its scope and password)")
    add.add_argument("username")
    which = add.add_mutually_exclusive_group(required=True)
    which.add_argument("--authority", metavar="ID", help="organisation admin: every school of this school authority")
    which.add_argument(
        "--school",
        metavar="CODE_OR_ID",
        nargs="+",
        action="extend",
        help="school admin: these school units (school unit codes or school ids)",
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(func=cmd_admin_add, settings_of=settings_of)
    remove = admin_sub.add_parser("remove", parents=[locations], help="remove an account (its sessions end)")
    remove.add_argument("username")
    remove.set_defaults(func=cmd_admin_remove, settings_of=settings_of)
    listing = admin_sub.add_parser(
        "list", parents=[locations], help="list the accounts and their scopes (never passwords)"
    )
    listing.set_defaults(func=cmd_admin_list, settings_of=settings_of)
    access = admin_sub.add_parser(
        "access", parents=[locations], help="who opened the page of this person or group, and when"
    )
    access.add_argument("id", help="a person's or group's id")
    access.set_defaults(func=cmd_admin_access, settings_of=settings_of)
