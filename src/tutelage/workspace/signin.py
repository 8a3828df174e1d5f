"""Signing in with an e-mail address and password, throttled, and changing a password.

A sign-in reads the account and checks for a lock in a read-only snapshot, verifies the
password (argon2, tens of milliseconds) holding no transaction, and only then writes: the
new browser session on success, the failure count otherwise. So a wrong password is
counted even though the request fails, and no hashing runs while SQLite's one writer is
held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutelage.store import Store
from tutelage.store.tables import UserRow
from tutelage.workspace import audit, throttling
from tutelage.workspace.accounts import (
    SESSION_IDLE_TIMEOUT,
    Actor,
    end_web_sessions,
    hash_password,
    password_needs_rehash,
    start_web_session,
    verify_password,
)
from tutelage.workspace.errors import Invalid, Unauthenticated
from tutelage.workspace.passwords import check_password

__all__ = ["SignedIn", "change_password", "sign_in"]

_WRONG = "wrong e-mail address or password"


@dataclass(frozen=True)
class SignedIn:
    user: UserRow
    token: str  # the session cookie's value
    csrf_token: str


def sign_in(
    store: Store,
    *,
    email: str,
    password: str,
    address: str,
    user_agent: str = "",
    policy: throttling.ThrottlePolicy = throttling.DEFAULT_POLICY,
    idle: timedelta = SESSION_IDLE_TIMEOUT,
) -> SignedIn:
    """Start a browser session for the active account with this e-mail and password.

    Raises `throttling.Throttled` (429) while the address or account is locked, before
    the password is looked at, and `Unauthenticated` (401) for a wrong one, counted.
    """
    email = email.strip().lower()
    now = datetime.now(UTC)
    with store.read_session() as session:
        throttling.refuse_if_locked(session, email=email, address=address, now=now)
        found = session.execute(
            select(UserRow.id, UserRow.password_hash).where(
                UserRow.email == email, UserRow.is_active
            )
        ).first()
    user_id, stored = found if found is not None else (None, None)
    if user_id is None or not verify_password(stored, password):
        with store.session() as session:
            throttling.record_failure(session, email=email, address=address, now=now, policy=policy)
        raise Unauthenticated(_WRONG)
    with store.session() as session:
        row = session.get(UserRow, user_id)
        if row is None or not row.is_active or row.password_hash != stored:
            raise Unauthenticated(_WRONG)  # deactivated or changed in the meantime
        if stored is not None and password_needs_rehash(stored):
            row.password_hash = hash_password(password)
        throttling.record_success(session, email=email, address=address, now=now)
        token, csrf = start_web_session(
            session, user=row, idle=idle, address=address, user_agent=user_agent
        )
    return SignedIn(user=row, token=token, csrf_token=csrf)


def change_password(
    session: Session, *, actor: Actor, current: str, new: str, keep_session_id: int | None
) -> int:
    """Set a new password (the current one must be right); every other browser session
    of the account ends. Returns how many ended. (In the request's own transaction: a
    rare change, so its two hashings may hold the writer.)"""
    user = session.get(UserRow, actor.user_id)
    if user is None or not verify_password(user.password_hash, current):
        # 422, not 401: the session is fine, the form's "current password" field is not.
        raise Invalid("the current password is not right", code="wrong_password")
    check_password(new, email=user.email or "", handle=user.handle, name=user.display_name)
    user.password_hash = hash_password(new)
    ended = end_web_sessions(session, user_id=user.id, except_id=keep_session_id)
    audit.record(
        session,
        actor_id=user.id,
        action="user.password_change",
        target=user.handle,
        details={"sessions_ended": ended},
    )
    return ended
