"""Offboarding: deactivating an account, and listing and revoking API tokens.

A deactivated account cannot sign in, and its sessions and tokens stop working on their
next request (authentication reads `is_active` and `revoked_at` every time); what it
held goes back to the queue. Every step is in the audit log. `actor` None is the
operator at the command line, who holds the store itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tutelage.store.tables import UserRow
from tutelage.store.workspace_tables import ApiTokenRow, AssignmentRow
from tutelage.workspace import audit
from tutelage.workspace.accounts import Actor, end_web_sessions
from tutelage.workspace.errors import Conflict, Invalid, NotFound
from tutelage.workspace.policy import require_admin
from tutelage.workspace.queue import release_leases

__all__ = ["TokenInfo", "activate_user", "deactivate_user", "list_tokens", "revoke_token"]


@dataclass(frozen=True)
class TokenInfo:
    """What is known of a token besides its secret (never kept)."""

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _user(session: Session, handle: str) -> UserRow:
    user = session.scalar(select(UserRow).where(UserRow.handle == handle))
    if user is None:
        raise NotFound(f"no user {handle!r}")
    return user


def _may_manage(actor: Actor | None, user_id: int) -> None:
    """Admins manage anyone's tokens; everyone else only their own."""
    if actor is not None and actor.user_id != user_id:
        require_admin(actor)


def deactivate_user(session: Session, *, actor: Actor | None, handle: str, reason: str) -> int:
    """Deactivate `handle`: no sign-in, every session ended, every token revoked, every
    item they held back in the queue; returns how many items were given back."""
    if actor is not None:
        require_admin(actor)
    if not reason.strip():
        raise Invalid("say why the account is deactivated (--reason)", code="reason_required")
    user = _user(session, handle)
    if actor is not None and user.id == actor.user_id:
        raise Conflict("you cannot deactivate your own account")
    if not user.is_active:
        raise Conflict(f"{handle!r} is deactivated already")
    now = datetime.now(UTC)
    user.is_active = False
    end_web_sessions(session, user_id=user.id)
    revoked = session.execute(
        update(ApiTokenRow)
        .where(ApiTokenRow.user_id == user.id, ApiTokenRow.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount  # type: ignore[attr-defined]
    projects = session.scalars(
        select(AssignmentRow.project_id)
        .where(AssignmentRow.user_id == user.id, AssignmentRow.status == "leased")
        .distinct()
    ).all()
    released = sum(
        release_leases(session, project_id=p, user_id=user.id, reason="account deactivated")
        for p in projects
    )
    audit.record(
        session,
        actor_id=None if actor is None else actor.user_id,
        action="user.deactivate",
        target=handle,
        details={"reason": reason, "tokens_revoked": int(revoked), "leases_released": released},
    )
    return released


def activate_user(session: Session, *, actor: Actor | None, handle: str) -> None:
    """Let a deactivated account sign in again (its old tokens stay revoked)."""
    if actor is not None:
        require_admin(actor)
    user = _user(session, handle)
    if user.is_active:
        raise Conflict(f"{handle!r} is active already")
    user.is_active = True
    audit.record(
        session,
        actor_id=None if actor is None else actor.user_id,
        action="user.activate",
        target=handle,
    )


def list_tokens(session: Session, *, actor: Actor | None, handle: str) -> list[TokenInfo]:
    """The tokens of `handle`, newest first, revoked ones included."""
    user = _user(session, handle)
    _may_manage(actor, user.id)
    rows = session.scalars(
        select(ApiTokenRow).where(ApiTokenRow.user_id == user.id).order_by(ApiTokenRow.id.desc())
    )
    return [
        TokenInfo(row.id, row.name, row.created_at, row.last_used_at, row.revoked_at)
        for row in rows
    ]


def revoke_token(session: Session, *, actor: Actor | None, token_id: int) -> None:
    """Revoke one token: its next request is refused."""
    row = session.get(ApiTokenRow, token_id)
    if row is None or (actor is not None and not actor.is_admin and row.user_id != actor.user_id):
        raise NotFound(f"no token {token_id}")
    if row.revoked_at is not None:
        raise Conflict(f"token {token_id} is revoked already")
    row.revoked_at = datetime.now(UTC)
    owner = session.get(UserRow, row.user_id)
    audit.record(
        session,
        actor_id=None if actor is None else actor.user_id,
        action="token.revoke",
        target=owner.handle if owner is not None else str(row.user_id),
        details={"token_id": token_id, "name": row.name},
    )
