"""Sessions, passwords and sign-in locks over the API.

Anyone signed in: list their browser sessions, end one or all the others, change their
password (which ends every other session). Admins: end all of someone's sessions, list
the sign-in locks in force and lift one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tutelage.web.deps import AdminActor, CurrentActor, DbSession
from tutelage.web.params import Id, Password
from tutelage.workspace.signin import change_password
from tutelage.workspace.throttling import active_locks, lift_lock
from tutelage.workspace.web_sessions import (
    end_all_sessions,
    end_other_sessions,
    end_session,
    live_sessions,
)

__all__ = ["router"]

router = APIRouter(tags=["access"])


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: Password
    new: Password


class SessionOut(BaseModel):
    id: int
    signed_in_at: datetime
    ends_if_idle_at: datetime
    address: str
    user_agent: str
    current: bool = Field(description="The session this request came with.")


class LockOut(BaseModel):
    id: int
    scope: str = Field(description="'address' (a client address) or 'account' (an e-mail).")
    key: str
    locked_until: datetime
    locks: int = Field(description="Locks in a row: each lasts twice as long as the one before.")


class Ended(BaseModel):
    sessions_ended: int


@router.get("/me/sessions")
def get_my_sessions(session: DbSession, actor: CurrentActor) -> list[SessionOut]:
    """My browser sessions that have not ended, newest first."""
    return [
        SessionOut(**vars(s)) for s in live_sessions(session, actor=actor, user_id=actor.user_id)
    ]


@router.delete("/me/sessions/{session_id}", status_code=204)
def delete_my_session(session_id: Id, session: DbSession, actor: CurrentActor) -> None:
    """End one of my sessions: its next request is refused."""
    end_session(session, actor=actor, session_id=session_id)


@router.post("/me/sessions/end-others")
def post_end_other_sessions(session: DbSession, actor: CurrentActor) -> Ended:
    """End every one of my sessions but this one."""
    return Ended(sessions_ended=end_other_sessions(session, actor=actor))


@router.post("/me/password")
def post_password(body: PasswordChange, session: DbSession, actor: CurrentActor) -> Ended:
    """Change my password; every other browser session of mine ends (API tokens stay)."""
    ended = change_password(
        session,
        actor=actor,
        current=body.current,
        new=body.new,
        keep_session_id=actor.session_id,
    )
    return Ended(sessions_ended=ended)


@router.post("/users/{handle}/sign-out")
def post_sign_out_user(handle: str, session: DbSession, actor: AdminActor) -> Ended:
    """End every browser session of the account (admins)."""
    return Ended(sessions_ended=end_all_sessions(session, actor=actor, handle=handle))


@router.get("/login-locks")
def get_login_locks(session: DbSession, actor: AdminActor) -> list[LockOut]:
    """The client addresses and accounts locked now after failed sign-ins (admins)."""
    return [
        LockOut(
            id=row.id,
            scope=row.scope,
            key=row.key,
            locked_until=row.locked_until,
            locks=row.locks,
        )
        for row in active_locks(session, now=datetime.now(UTC))
        if row.locked_until is not None
    ]


@router.delete("/login-locks/{lock_id}", status_code=204)
def delete_login_lock(lock_id: Id, session: DbSession, actor: AdminActor) -> None:
    """Lift a lock now (recorded in the audit log)."""
    lift_lock(session, lock_id=lock_id, actor_id=actor.user_id)
