"""The browser sessions of an account: list them, end one, end the others, end them all.

An account holder sees where and when each of their live sessions was signed in and can
end any of them (a lost laptop, a shared computer); an admin can end all of someone's.
Each ending is in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tutelage.store.tables import UserRow, as_utc
from tutelage.store.workspace_tables import WebSessionRow
from tutelage.workspace import audit
from tutelage.workspace.accounts import SESSION_LIFETIME, Actor, end_web_sessions
from tutelage.workspace.errors import NotFound

__all__ = ["LiveSession", "end_all_sessions", "end_other_sessions", "end_session", "live_sessions"]


@dataclass(frozen=True)
class LiveSession:
    id: int
    signed_in_at: datetime
    ends_if_idle_at: datetime
    address: str
    user_agent: str
    current: bool  # the session this request came with


def live_sessions(session: Session, *, actor: Actor, user_id: int) -> list[LiveSession]:
    """The account's sessions that have not ended, newest first."""
    now = datetime.now(UTC)
    rows = session.scalars(
        select(WebSessionRow)
        .where(WebSessionRow.user_id == user_id, WebSessionRow.expires_at > now)
        .order_by(WebSessionRow.id.desc())
    )
    return [
        LiveSession(
            id=row.id,
            signed_in_at=as_utc(row.created_at),
            ends_if_idle_at=as_utc(row.expires_at),
            address=row.address or "unknown",
            user_agent=row.user_agent or "unknown",
            current=row.id == actor.session_id,
        )
        for row in rows
        if as_utc(row.created_at) + SESSION_LIFETIME > now
    ]


def end_session(session: Session, *, actor: Actor, session_id: int) -> None:
    """End one of the actor's own sessions (another account's is "not found")."""
    now = datetime.now(UTC)
    ended = session.execute(
        update(WebSessionRow)
        .where(
            WebSessionRow.id == session_id,
            WebSessionRow.user_id == actor.user_id,
            WebSessionRow.expires_at > now,
        )
        .values(expires_at=now)
    )
    if not ended.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"you have no live session {session_id}")
    audit.record(
        session,
        actor_id=actor.user_id,
        action="user.session_end",
        target=actor.handle,
        details={"session": session_id},
    )


def end_other_sessions(session: Session, *, actor: Actor) -> int:
    """End every session of the actor's but the one this request came with."""
    ended = end_web_sessions(session, user_id=actor.user_id, except_id=actor.session_id)
    audit.record(
        session,
        actor_id=actor.user_id,
        action="user.sign_out_others",
        target=actor.handle,
        details={"sessions_ended": ended},
    )
    return ended


def end_all_sessions(session: Session, *, actor: Actor, handle: str) -> int:
    """An admin ends every browser session of `handle` (API tokens stay: revoke those)."""
    user_id = session.scalar(select(UserRow.id).where(UserRow.handle == handle))
    if user_id is None:
        raise NotFound(f"no user {handle!r}")
    ended = end_web_sessions(session, user_id=user_id)
    audit.record(
        session,
        actor_id=actor.user_id,
        action="user.sign_out_everywhere",
        target=handle,
        details={"sessions_ended": ended},
    )
    return ended
