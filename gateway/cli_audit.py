"""`fieldgw audit verify|show`: check and read the tamper-evident audit log (DATA_DIR/audit.jsonl)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gateway import audit
from gateway.cli_users import UsersDataDir, UsersKit, data_dir_of

audit_app = typer.Typer(no_args_is_help=True, help="The audit log of commands and dispatches")


@audit_app.command("verify")
def verify(data_dir: UsersDataDir = None, kit: UsersKit = None) -> None:
    """Check every record's hash chain: exit 0 when intact, 1 naming each broken line."""
    path = data_dir_of(data_dir, kit) / "audit.jsonl"
    result = audit.verify(path)
    for problem in result.problems:
        typer.echo(f"{path}: {problem}", err=True)
    if not result.ok:
        raise typer.Exit(1)
    typer.echo(f"{path}: ok, {result.records} records, head seq {result.last_seq} {result.last_hash[:16]}…")


@audit_app.command("show")
def show(data_dir: UsersDataDir = None, kit: UsersKit = None,
         limit: Annotated[int, typer.Option("--limit", help="newest N records")] = 20) -> None:
    """Print the newest records, oldest of them first, one JSON object per line."""
    for record in reversed(audit.read(data_dir_of(data_dir, kit) / "audit.jsonl", limit)):
        typer.echo(json.dumps(record, ensure_ascii=False))
