"""`fieldgw users add|list|remove|passwd|token|revoke`: the kit's users, in DATA_DIR/users.sqlite3.

The data directory is `--data-dir DIR`, or `--kit KIT.yaml` for the default `./var/<kit>` that
`fieldgw run` uses. Passwords are read from the terminal (asked twice) or, for scripts, one line
from standard input with `--password-stdin`; never from the command line, where `ps` would show them.
A running gateway sees every change within a second.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gateway.users import ROLES, TokenRejected, UserError, UserStore

users_app = typer.Typer(no_args_is_help=True, help="Users, roles and tokens of a kit (viewer < operator < admin)")

UsersDataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="the gateway's data directory")]
UsersKit = Annotated[Optional[Path], typer.Option("--kit", help="the kit manifest (data directory ./var/<kit>)")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="read the password from standard input")]
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def data_dir_of(data_dir: Optional[Path], kit: Optional[Path]) -> Path:
    """`--data-dir DIR`, or the default `./var/<kit>` of `--kit KIT.yaml` (exactly one of them)."""
    if (data_dir is None) == (kit is None):
        typer.echo("give exactly one of --data-dir DIR or --kit KIT.yaml", err=True)
        raise typer.Exit(2)
    if data_dir is None:
        from gateway.cli import _load_or_exit

        data_dir = Path("var") / _load_or_exit(kit).kit.kit  # type: ignore[arg-type]
    return data_dir


def _store(data_dir: Optional[Path], kit: Optional[Path]) -> UserStore:
    return UserStore(data_dir_of(data_dir, kit))


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `12h`, `30d` → seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m, 12h or 30d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


@users_app.command("add")
def add(name: str, role: Annotated[str, typer.Option("--role", help=" < ".join(ROLES))],
        data_dir: UsersDataDir = None, kit: UsersKit = None, password_stdin: PasswordStdin = False) -> None:
    """Add a user with a role."""
    store = _store(data_dir, kit)
    try:
        user = store.add(name, role, _password(password_stdin))
    except UserError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"added {user.name} ({user.role})")


@users_app.command("list")
def list_users(data_dir: UsersDataDir = None, kit: UsersKit = None) -> None:
    """List users and their roles."""
    for user in _store(data_dir, kit).list():
        typer.echo(f"{user.name}\t{user.role}")


@users_app.command("remove")
def remove(name: str, data_dir: UsersDataDir = None, kit: UsersKit = None) -> None:
    """Remove a user: every token of theirs stops working at once."""
    if not _store(data_dir, kit).remove(name):
        raise _fail(f"no user {name!r}")
    typer.echo(f"removed {name}")


@users_app.command("passwd")
def passwd(name: str, data_dir: UsersDataDir = None, kit: UsersKit = None, password_stdin: PasswordStdin = False) -> None:
    """Set a user's password."""
    try:
        _store(data_dir, kit).set_password(name, _password(password_stdin))
    except UserError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"password of {name} changed")


@users_app.command("token")
def token(name: str, data_dir: UsersDataDir = None, kit: UsersKit = None,
          ttl: Annotated[str, typer.Option("--ttl", help="lifetime: 90s, 15m, 12h, 30d")] = "30d",
          role: Annotated[Optional[str], typer.Option("--role", help="grant less than the user's role")] = None) -> None:
    """Mint a bearer token for a user (for a wall screen, a script, a command-centre system)."""
    try:
        value, info = _store(data_dir, kit).issue(name, parse_duration(ttl), role)
    except UserError as exc:
        raise _fail(str(exc)) from None
    typer.echo(value)
    typer.echo(f"{info.user} as {info.role}, token id {info.token_id}, expires {info.expires_ts} ms", err=True)


@users_app.command("revoke")
def revoke(token_or_id: Annotated[str, typer.Argument(help="the token, or its id")],
           data_dir: UsersDataDir = None, kit: UsersKit = None) -> None:
    """Revoke one token before it expires."""
    try:
        _store(data_dir, kit).revoke(token_or_id)
    except TokenRejected as exc:
        raise _fail(f"not revoked: {exc.message}") from None
    typer.echo("revoked")
