"""``meterpay users`` and ``meterpay tokens``: the first administrator of a new
deployment, password resets from the machine itself, and integrators' API tokens.

The command line acts with the machine's own authority (whoever can run it can read the
database anyway); what it does is audited as ``cli``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from meterpay.auth import repository as repo
from meterpay.auth import tokens, users
from meterpay.auth.model import Permission, Role
from meterpay.bootstrap import build_runtime
from meterpay.kernel.errors import DomainError
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites


def add_auth_commands(sub: Any) -> None:
    group = sub.add_parser("users", help="staff users: add the first admin, reset a password")
    commands = group.add_subparsers(title="users commands")
    add = commands.add_parser("add", help="add a staff user with a role (all sites, or --site)")
    add.add_argument("username")
    add.add_argument("--name", default="", help="display name (default: the user name)")
    add.add_argument(
        "--role", required=True, choices=[r.value for r in Role if r is not Role.OWNER]
    )
    add.add_argument("--site", default=None, help="site code (default: every site)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin, not a prompt"
    )
    add.set_defaults(run=_add_user)
    reset = commands.add_parser("reset-password", help="a temporary password; sessions end")
    reset.add_argument("username")
    reset.set_defaults(run=_reset)

    group = sub.add_parser("tokens", help="API tokens for integrators")
    commands = group.add_subparsers(title="tokens commands")
    make = commands.add_parser("create", help="a new token (shown once)")
    make.add_argument("name")
    make.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=[p.value for p in Permission],
        help="repeat for each permission the token carries",
    )
    make.add_argument(
        "--site", action="append", default=None, help="site code (repeat); default all"
    )
    make.set_defaults(run=_create_token)
    listed = commands.add_parser("list", help="tokens, with when each was last used")
    listed.set_defaults(run=_list_tokens)


def _site_id(rt: Runtime, code: str | None) -> int | None:
    if code is None:
        return None
    with rt.db.read() as conn:
        return sites.site_by_code(conn, code).id


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password (10 characters or more): ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the two passwords differ")
    return first


def _add_user(args: argparse.Namespace) -> int:
    rt = build_runtime()
    try:
        member = users.create_staff(
            rt,
            username=args.username,
            display_name=args.name,
            password=_password(args.password_stdin),
            roles=[(Role(args.role), _site_id(rt, args.site))],
            by=None,
            must_change_password=False,
        )
    except DomainError as exc:
        print(f"not added: {exc.message}", file=sys.stderr)
        return 1
    where = args.site or "every site"
    print(f"added {member.user.username} as {args.role} on {where}")
    return 0


def _reset(args: argparse.Namespace) -> int:
    rt = build_runtime()
    with rt.db.read() as conn:
        found = repo.user_named(conn, args.username.strip().lower())
    if found is None:
        print(f"no user {args.username}", file=sys.stderr)
        return 1
    word = users.reset_password(rt, found.id, by=None, reason="reset from the command line")
    print(f"temporary password for {found.username}: {word}")
    print("(it must be changed at the next sign-in; the user's sessions have ended)")
    return 0


def _create_token(args: argparse.Namespace) -> int:
    rt = build_runtime()
    try:
        site_ids = [_site_id(rt, code) for code in args.site] if args.site else None
        made, secret = tokens.create_token(
            rt,
            name=args.name,
            scopes=args.scope,
            site_ids=[s for s in site_ids if s is not None] if site_ids else None,
            by=None,
        )
    except DomainError as exc:
        print(f"not created: {exc.message}", file=sys.stderr)
        return 1
    print(f"token {made.id} ({made.name}): {secret}")
    print("shown once: keep it in the integrator's secret store; send it as Authorization: Bearer")
    return 0


def _list_tokens(_: argparse.Namespace) -> int:
    rt = build_runtime()
    for t in tokens.list_tokens(rt):
        state = "revoked" if t.revoked_at else "active"
        sites_text = "*" if t.site_ids is None else ",".join(map(str, t.site_ids))
        print(
            f"{t.id}\t{t.name}\t{t.prefix}…\t{state}\t{','.join(t.scopes)}\tsites {sites_text}"
            f"\tlast used {t.last_used_at or 'never'}"
        )
    return 0
