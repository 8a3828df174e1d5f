"""`tutelage users ...`: accounts from the command line (the first admin, scripts' tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from tutelage.cli.options import DbOption
from tutelage.store import open_store
from tutelage.store.tables import UserRow
from tutelage.workspace.accounts import create_api_token, create_user

users_app = typer.Typer(
    help="Accounts and API tokens: create, list, deactivate, revoke.", no_args_is_help=True
)
console = Console(soft_wrap=True)


@users_app.command("create")
def create_command(
    email: Annotated[str, typer.Option(help="E-mail address to sign in with.")],
    handle: Annotated[str, typer.Option(help="Name shown to admins (experts never see it).")],
    role: Annotated[str, typer.Option(help="admin, reviewer or expert.")] = "expert",
    expertise: Annotated[
        list[str] | None, typer.Option(help="An expertise tag; repeat for several.")
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(help="Read the password from this file instead of asking for it."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Create an account (the first admin of a new store, for instance)."""
    if password_file is not None:
        password = password_file.read_text(encoding="utf-8").strip()
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    store = open_store(db)
    with store.session() as session:
        user = create_user(
            session,
            email=email,
            password=password,
            handle=handle,
            role=role,
            expertise=frozenset(expertise or ()),
        )
        console.print(f"created {user.role} {user.handle!r} ({user.email})")


@users_app.command("token")
def token_command(
    handle: Annotated[str, typer.Argument(help="Whose token.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    db: DbOption = None,
) -> None:
    """Create a personal API token (printed once; only its hash is stored)."""
    store = open_store(db)
    with store.session() as session:
        user_id = session.scalar(select(UserRow.id).where(UserRow.handle == handle))
        if user_id is None:
            console.print(f"[red]error:[/] no user {handle!r}")
            raise typer.Exit(1)
        token = create_api_token(session, user_id=user_id, name=name)
    console.print(token, markup=False)


@users_app.command("list")
def list_command(db: DbOption = None) -> None:
    """List accounts with their role and expertise."""
    store = open_store(db)
    table = Table("handle", "e-mail", "role", "expertise", "active")
    with store.session() as session:
        for user in session.scalars(select(UserRow).order_by(UserRow.handle)):
            table.add_row(
                user.handle, user.email or "", user.role, ", ".join(user.expertise),
                "yes" if user.is_active else "no",
            )  # fmt: skip
    console.print(table)


@users_app.command("deactivate")
def deactivate_command(
    handle: Annotated[str, typer.Argument(help="Whose account.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    db: DbOption = None,
) -> None:
    """Deactivate an account: no sign-in, its sessions and tokens end now, its items go back."""
    from tutelage.workspace.revocation import deactivate_user

    store = open_store(db)
    with store.session() as session:
        released = deactivate_user(session, actor=None, handle=handle, reason=reason)
    console.print(
        f"deactivated {handle!r}: sessions ended, tokens revoked, {released} held items "
        "given back to the queue",
        markup=False,
    )


@users_app.command("activate")
def activate_command(
    handle: Annotated[str, typer.Argument(help="Whose account.")], db: DbOption = None
) -> None:
    """Let a deactivated account sign in again (its old tokens stay revoked)."""
    from tutelage.workspace.revocation import activate_user

    store = open_store(db)
    with store.session() as session:
        activate_user(session, actor=None, handle=handle)
    console.print(f"activated {handle!r}", markup=False)


@users_app.command("tokens")
def tokens_command(
    handle: Annotated[str, typer.Argument(help="Whose tokens.")], db: DbOption = None
) -> None:
    """List an account's API tokens (never their secrets), newest first."""
    from tutelage.workspace.revocation import list_tokens

    store = open_store(db)
    table = Table("id", "name", "created", "last used", "revoked")
    with store.session() as session:
        for token in list_tokens(session, actor=None, handle=handle):
            table.add_row(
                str(token.id), token.name, f"{token.created_at:%Y-%m-%d %H:%M}",
                f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "",
                f"{token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "",
            )  # fmt: skip
    console.print(table)


@users_app.command("revoke")
def revoke_command(
    token_id: Annotated[int, typer.Argument(help="The token's id (`tutelage users tokens`).")],
    db: DbOption = None,
) -> None:
    """Revoke an API token: its next request is refused."""
    from tutelage.workspace.revocation import revoke_token

    store = open_store(db)
    with store.session() as session:
        revoke_token(session, actor=None, token_id=token_id)
    console.print(f"revoked token {token_id}", markup=False)
