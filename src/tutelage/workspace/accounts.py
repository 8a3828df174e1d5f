"""Accounts: passwords (argon2), browser sessions with CSRF secrets, API tokens, invitations.

Session, API and invitation tokens are 256-bit random strings; only their SHA-256 is
stored, so a leaked database does not hand out working credentials. Passwords are
hashed with argon2id (argon2-cffi's defaults).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from tutelage.records import refuse_control_characters
from tutelage.store import core
from tutelage.store.tables import ProjectRow, UserRow, as_utc
from tutelage.store.workspace_tables import (
    ApiTokenRow,
    InvitationRow,
    MembershipRow,
    WebSessionRow,
)
from tutelage.workspace import audit
from tutelage.workspace.errors import (
    Conflict,
    Invalid,
    NotFound,
    Unauthenticated,
    WorkspaceError,
)
from tutelage.workspace.passwords import check_password

__all__ = [
    "ROLES",
    "Actor",
    "accept_invitation",
    "create_api_token",
    "create_user",
    "end_web_session",
    "end_web_sessions",
    "hash_password",
    "invite",
    "password_needs_rehash",
    "sign_out_everywhere",
    "start_web_session",
    "token_hash",
    "user_for_api_token",
    "user_for_web_session",
    "verify_password",
]

ROLES = ("admin", "reviewer", "expert")
SESSION_LIFETIME = timedelta(days=7)  # however active: then sign in again
SESSION_IDLE_TIMEOUT = timedelta(hours=4)  # the default; `TUTELAGE_SESSION_IDLE_MINUTES`
# A session's idle deadline moves with its requests, written at most this often: a write on
# every request would cost more than the request.
_IDLE_REFRESH = timedelta(seconds=60)
INVITATION_LIFETIME = timedelta(days=14)
_hasher = PasswordHasher()
# Verifying against this keeps the time of a login for an unknown e-mail close to that
# of a wrong password, so response times do not reveal which addresses have accounts.
_DUMMY_HASH = _hasher.hash("not a password")


@dataclass(frozen=True)
class Actor:
    """The signed-in person a request acts for."""

    user_id: int
    handle: str
    role: str
    expertise: frozenset[str]
    csrf_token: str | None = None  # set for browser sessions
    session_id: int | None = None  # the browser session's row, when it is one

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_reviewer(self) -> bool:
        return self.role in ("admin", "reviewer")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _actor(user: UserRow, csrf_token: str | None = None) -> Actor:
    return Actor(
        user_id=user.id,
        handle=user.handle,
        role=user.role,
        expertise=frozenset(user.expertise),
        csrf_token=csrf_token,
    )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash; with none stored (no such account) it
    still hashes, so that the answer takes as long either way."""
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored is not None


def password_needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    handle: str,
    role: str = "expert",
    display_name: str = "",
    expertise: frozenset[str] = frozenset(),
    actor_id: int | None = None,
) -> UserRow:
    """Create an account; e-mail and handle must be new."""
    email = email.strip().lower()
    if "@" not in email:
        raise WorkspaceError(f"not an e-mail address: {email!r}", code="bad_email")
    if role not in ROLES:
        raise WorkspaceError(f"role must be one of {', '.join(ROLES)}", code="bad_role")
    if not handle.strip():
        raise WorkspaceError("a handle must not be empty", code="bad_handle")
    for what, value in (("e-mail", email), ("handle", handle), ("display name", display_name)):
        try:
            refuse_control_characters(value, what)
        except ValueError as exc:
            raise Invalid(str(exc), code="bad_characters") from None
    check_password(password, email=email, handle=handle.strip(), name=display_name)
    taken = session.scalar(
        select(UserRow.id).where((UserRow.email == email) | (UserRow.handle == handle))
    )
    if taken is not None:
        raise Conflict("that e-mail address or handle has an account already")
    user = UserRow(
        email=email,
        handle=handle.strip(),
        display_name=display_name,
        role=role,
        expertise=sorted(expertise),
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor_id=actor_id,
        action="user.create",
        target=user.handle,
        details={"role": role, "expertise": sorted(expertise)},
    )
    return user


def start_web_session(
    session: Session,
    *,
    user: UserRow,
    idle: timedelta = SESSION_IDLE_TIMEOUT,
    address: str = "",
    user_agent: str = "",
) -> tuple[str, str]:
    """Return (cookie token, CSRF token) of a new browser session for `user`. Its row's
    `expires_at` is the idle deadline, which requests move on; `created_at` plus
    SESSION_LIFETIME is the end however active it is."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session.add(
        WebSessionRow(
            token_hash=token_hash(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + min(idle, SESSION_LIFETIME),
            address=address[:64],
            user_agent=user_agent[:300],
        )
    )
    return token, csrf


# Every request authenticates, so these statements are built once: building and keying a
# statement costs SQLAlchemy more than SQLite takes to run it.
_ACTOR_COLUMNS = (UserRow.id, UserRow.handle, UserRow.role, UserRow.expertise, UserRow.is_active)
_BY_WEB_SESSION = (
    select(
        *_ACTOR_COLUMNS,
        WebSessionRow.id,
        WebSessionRow.csrf_token,
        WebSessionRow.created_at,
        WebSessionRow.expires_at,
    )
    .join(WebSessionRow, WebSessionRow.user_id == UserRow.id)
    .where(WebSessionRow.token_hash == bindparam("token_hash"))
)
_BY_API_TOKEN = (
    select(*_ACTOR_COLUMNS)
    .join(ApiTokenRow, ApiTokenRow.user_id == UserRow.id)
    .where(ApiTokenRow.token_hash == bindparam("token_hash"), ApiTokenRow.revoked_at.is_(None))
)


def user_for_web_session(
    session: Session, *, token: str, idle: timedelta = SESSION_IDLE_TIMEOUT
) -> Actor:
    """The actor of a live browser session, whose idle deadline this request moves on.
    A session ends `idle` after its last request, or SESSION_LIFETIME after sign-in."""
    row = core(session).execute(_BY_WEB_SESSION, {"token_hash": token_hash(token)}).first()
    if row is None:
        raise Unauthenticated("not signed in")
    user_id, handle, role, expertise, is_active, session_id, csrf, created_at, expires_at = row
    now = datetime.now(UTC)
    end = as_utc(created_at) + SESSION_LIFETIME
    if as_utc(expires_at) < now or end < now or not is_active:
        raise Unauthenticated("the session has expired: sign in again")
    deadline = min(now + idle, end)
    if abs(deadline - as_utc(expires_at)) > min(_IDLE_REFRESH, idle / 10):
        core(session).execute(_MOVE_DEADLINE, {"session_id": session_id, "deadline": deadline})
    return Actor(user_id, handle, role, frozenset(expertise), csrf, session_id)


_MOVE_DEADLINE = (
    update(WebSessionRow)
    .where(WebSessionRow.id == bindparam("session_id"))
    .values(expires_at=bindparam("deadline"))
)


def end_web_session(session: Session, *, token: str) -> None:
    session.execute(
        update(WebSessionRow)
        .where(WebSessionRow.token_hash == token_hash(token))
        .values(expires_at=datetime.now(UTC))
    )


def end_web_sessions(session: Session, *, user_id: int, except_id: int | None = None) -> int:
    """End every live browser session of the user ("sign out everywhere"), but the one
    `except_id` names; return how many."""
    now = datetime.now(UTC)
    ended = session.execute(
        update(WebSessionRow)
        .where(
            WebSessionRow.user_id == user_id,
            WebSessionRow.expires_at > now,
            WebSessionRow.id != (except_id or 0),
        )
        .values(expires_at=now)
    )
    return int(ended.rowcount)  # type: ignore[attr-defined]


def sign_out_everywhere(session: Session, *, actor: Actor) -> int:
    """End all of the actor's browser sessions, recorded in the audit log. API tokens stay
    valid: they are revoked one by one (`revocation.revoke_token`)."""
    ended = end_web_sessions(session, user_id=actor.user_id)
    audit.record(
        session,
        actor_id=actor.user_id,
        action="user.sign_out_everywhere",
        target=actor.handle,
        details={"sessions_ended": ended},
    )
    return ended


def create_api_token(session: Session, *, user_id: int, name: str = "") -> str:
    """Return a new personal API token (shown once; only its hash is kept)."""
    token = "tut_" + secrets.token_urlsafe(32)
    session.add(ApiTokenRow(user_id=user_id, name=name, token_hash=token_hash(token)))
    audit.record(session, actor_id=user_id, action="token.create", target=name)
    return token


def user_for_api_token(session: Session, *, token: str) -> Actor:
    row = core(session).execute(_BY_API_TOKEN, {"token_hash": token_hash(token)}).first()
    if row is None or not row.is_active:
        raise Unauthenticated("unknown or revoked API token")
    return Actor(row.id, row.handle, row.role, frozenset(row.expertise))


def invite(
    session: Session,
    *,
    actor_id: int,
    email: str,
    role: str = "expert",
    project_id: int | None = None,
    expertise: frozenset[str] = frozenset(),
) -> str:
    """Return the token of a new invitation link (shown once)."""
    if role not in ROLES:
        raise WorkspaceError(f"role must be one of {', '.join(ROLES)}", code="bad_role")
    if "@" not in email:
        raise WorkspaceError(f"not an e-mail address: {email!r}", code="bad_email")
    if project_id is not None and session.get(ProjectRow, project_id) is None:
        raise NotFound(f"no project {project_id}")
    token = secrets.token_urlsafe(32)
    session.add(
        InvitationRow(
            token_hash=token_hash(token),
            email=email.strip().lower(),
            role=role,
            project_id=project_id,
            expertise=sorted(expertise),
            created_by=actor_id,
            expires_at=datetime.now(UTC) + INVITATION_LIFETIME,
        )
    )
    audit.record(
        session,
        actor_id=actor_id,
        action="invitation.create",
        project_id=project_id,
        target=email,
        details={"role": role},
    )
    return token


def accept_invitation(
    session: Session, *, token: str, handle: str, password: str, display_name: str = ""
) -> UserRow:
    """Create the invited account (and its project membership); the link works once."""
    invitation = session.scalar(
        select(InvitationRow).where(InvitationRow.token_hash == token_hash(token))
    )
    if invitation is None or invitation.accepted_at is not None:
        raise NotFound("this invitation link is unknown or was used already")
    if as_utc(invitation.expires_at) < datetime.now(UTC):
        raise NotFound("this invitation link has expired: ask for a new one")
    user = create_user(
        session,
        email=invitation.email,
        password=password,
        handle=handle,
        role=invitation.role,
        display_name=display_name,
        expertise=frozenset(invitation.expertise),
        actor_id=invitation.created_by,
    )
    invitation.accepted_at = datetime.now(UTC)
    if invitation.project_id is not None:
        session.add(MembershipRow(project_id=invitation.project_id, user_id=user.id))
        audit.record(
            session,
            actor_id=invitation.created_by,
            action="member.add",
            project_id=invitation.project_id,
            target=user.handle,
        )
    return user
