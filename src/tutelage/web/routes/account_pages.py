"""Account pages: my API tokens (list, create, revoke), my browser sessions (end one or the
others) and my password; for admins, anyone's account with its tokens and sessions,
deactivation and re-activation, and what the audit log says of it.

Both are one template (`account.html`); the admin's adds the offboarding forms. Every
change answers with a 303 and a short message, except creating a token, whose secret
the answering page shows once. A refusal shows the page again with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tutelage.store.tables import UserRow
from tutelage.store.workspace_tables import AuditRow
from tutelage.web.deps import AdminActor, CurrentActor, DbSession
from tutelage.web.pages import render
from tutelage.web.params import Id
from tutelage.workspace.accounts import Actor, create_api_token
from tutelage.workspace.errors import NotFound, WorkspaceError
from tutelage.workspace.revocation import (
    activate_user,
    deactivate_user,
    list_tokens,
    revoke_token,
)
from tutelage.workspace.signin import change_password
from tutelage.workspace.web_sessions import (
    end_all_sessions,
    end_other_sessions,
    end_session,
    live_sessions,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form(max_length=1024)]
_DONE_CHARS = 300
_AUDIT_ROWS = 50


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _user(session: Session, handle: str) -> UserRow:
    user = session.scalar(select(UserRow).where(UserRow.handle == handle))
    if user is None:
        raise NotFound(f"no user {handle!r}")
    return user


def _history(session: Session, handle: str) -> list[dict[str, Any]]:
    """What the audit log says was done to this account (not all it did: that is the
    audit page's)."""
    rows = session.execute(
        select(AuditRow, UserRow.handle)
        .outerjoin(UserRow, UserRow.id == AuditRow.actor_id)
        .where(
            AuditRow.target == handle,
            or_(
                AuditRow.action.startswith("user."),
                AuditRow.action.startswith("token."),
                AuditRow.action.startswith("member."),
            ),
        )
        .order_by(AuditRow.id.desc())
        .limit(_AUDIT_ROWS)
    )
    return [
        {
            "at": _utc(entry.at),
            "who": who or "the command line",
            "action": entry.action,
            "reason": (entry.details or {}).get("reason", ""),
        }
        for entry, who in rows
    ]


def _base(handle: str, *, managing: bool) -> str:
    return f"/admin/users/{quote(handle, safe='')}" if managing else "/account"


def _page(
    request: Request,
    session: Session,
    actor: Actor,
    user: UserRow,
    *,
    managing: bool,
    new_token: str = "",
    error: str = "",
    status: int = 200,
) -> HTMLResponse:
    base = _base(user.handle, managing=managing)
    tokens = list_tokens(session, actor=actor, handle=user.handle)
    context = {
        "user": user,
        "managing": managing,
        "base": base,
        "tokens": [
            {
                "id": token.id,
                "name": token.name or "(no name)",
                "created": _utc(token.created_at),
                "last_used": _utc(token.last_used_at) or "never",
                "revoked": _utc(token.revoked_at),
            }
            for token in tokens
        ],
        "history": _history(session, user.handle) if managing else [],
        "sessions": [
            {
                "id": live.id,
                "signed_in": _utc(live.signed_in_at),
                "ends": _utc(live.ends_if_idle_at),
                "address": live.address,
                "browser": live.user_agent[:120],
                "current": live.current,
            }
            for live in live_sessions(session, actor=actor, user_id=user.id)
        ],
        "new_token": new_token,
        "error": error,
        "done": request.query_params.get("done", "")[:_DONE_CHARS],
    }
    return render(request, "account.html", context, actor=actor, status_code=status)


def _done(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'done': message})}", status_code=303)


# --- My account ---------------------------------------------------------------------------


@router.get("/account")
def my_account(request: Request, session: DbSession, actor: CurrentActor) -> HTMLResponse:
    """My API tokens, a form for a new one, and signing out everywhere."""
    return _page(request, session, actor, _user(session, actor.handle), managing=False)


@router.post("/account/tokens")
def new_token_form(
    request: Request, session: DbSession, actor: CurrentActor, name: Text = ""
) -> HTMLResponse:
    """Create a token; the answering page shows its secret, this once."""
    token = create_api_token(session, user_id=actor.user_id, name=name.strip())
    user = _user(session, actor.handle)
    return _page(request, session, actor, user, managing=False, new_token=token, status=201)


def _change(
    request: Request,
    session: Session,
    actor: Actor,
    user: UserRow,
    change: Callable[[], str],
    *,
    managing: bool,
) -> HTMLResponse | RedirectResponse:
    """Make the change in a savepoint; go back to the page with its message, or show the
    page again with the reason it was refused."""
    try:
        with session.begin_nested():
            message = change()
    except WorkspaceError as exc:
        return _page(
            request, session, actor, user, managing=managing, error=exc.message, status=exc.status
        )
    return _done(_base(user.handle, managing=managing), message)


def _revoke(session: Session, actor: Actor, user: UserRow, token_id: int) -> str:
    """Revoke one of `user`'s tokens (a token of anyone else is "not found" here)."""
    if token_id not in {
        token.id for token in list_tokens(session, actor=actor, handle=user.handle)
    }:
        raise NotFound(f"{user.handle} has no token {token_id}")
    revoke_token(session, actor=actor, token_id=token_id)
    return f"Revoked token {token_id} of {user.handle}: its next request is refused."


@router.post("/account/tokens/{token_id}/revoke", response_model=None)
def revoke_my_token_form(
    token_id: Id, request: Request, session: DbSession, actor: CurrentActor
) -> HTMLResponse | RedirectResponse:
    user = _user(session, actor.handle)
    return _change(
        request,
        session,
        actor,
        user,
        lambda: _revoke(session, actor, user, token_id),
        managing=False,
    )


@router.post("/account/sessions/{session_id}/end", response_model=None)
def end_my_session_form(
    session_id: Id, request: Request, session: DbSession, actor: CurrentActor
) -> HTMLResponse | RedirectResponse:
    def end() -> str:
        end_session(session, actor=actor, session_id=session_id)
        return f"Ended session {session_id}: its next request is refused."

    return _change(request, session, actor, _user(session, actor.handle), end, managing=False)


@router.post("/account/sessions/end-others", response_model=None)
def end_other_sessions_form(
    request: Request, session: DbSession, actor: CurrentActor
) -> HTMLResponse | RedirectResponse:
    def end() -> str:
        return f"Ended {end_other_sessions(session, actor=actor)} other session(s)."

    return _change(request, session, actor, _user(session, actor.handle), end, managing=False)


@router.post("/account/password", response_model=None)
def change_password_form(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    current: Text = "",
    new: Text = "",
) -> HTMLResponse | RedirectResponse:
    """Change my password; every other session of mine ends."""

    def change() -> str:
        ended = change_password(
            session, actor=actor, current=current, new=new, keep_session_id=actor.session_id
        )
        return f"Password changed; {ended} other session(s) ended."

    return _change(request, session, actor, _user(session, actor.handle), change, managing=False)


# --- An admin's view of anyone's account ---------------------------------------------------


@router.get("/admin/users/{handle}")
def user_page(handle: str, request: Request, session: DbSession, actor: AdminActor) -> HTMLResponse:
    return _page(request, session, actor, _user(session, handle), managing=True)


@router.post("/admin/users/{handle}/deactivate", response_model=None)
def deactivate_form(
    handle: str, request: Request, session: DbSession, actor: AdminActor, reason: Text = ""
) -> HTMLResponse | RedirectResponse:
    def deactivate() -> str:
        released = deactivate_user(session, actor=actor, handle=handle, reason=reason)
        return (
            f"Deactivated {handle}: sessions ended, tokens revoked, "
            f"{released} held item(s) back in the queue."
        )

    user = _user(session, handle)
    return _change(request, session, actor, user, deactivate, managing=True)


@router.post("/admin/users/{handle}/sign-out", response_model=None)
def sign_out_user_form(
    handle: str, request: Request, session: DbSession, actor: AdminActor
) -> HTMLResponse | RedirectResponse:
    def sign_out() -> str:
        ended = end_all_sessions(session, actor=actor, handle=handle)
        return f"Ended {ended} session(s) of {handle} (API tokens stay: revoke them below)."

    return _change(request, session, actor, _user(session, handle), sign_out, managing=True)


@router.post("/admin/users/{handle}/activate", response_model=None)
def activate_form(
    handle: str, request: Request, session: DbSession, actor: AdminActor
) -> HTMLResponse | RedirectResponse:
    def activate() -> str:
        activate_user(session, actor=actor, handle=handle)
        return f"{handle} can sign in again (old tokens stay revoked)."

    return _change(request, session, actor, _user(session, handle), activate, managing=True)


@router.post("/admin/users/{handle}/tokens/{token_id}/revoke", response_model=None)
def revoke_token_form(
    handle: str, token_id: Id, request: Request, session: DbSession, actor: AdminActor
) -> HTMLResponse | RedirectResponse:
    user = _user(session, handle)
    return _change(
        request,
        session,
        actor,
        user,
        lambda: _revoke(session, actor, user, token_id),
        managing=True,
    )
