"""Pages for signing in and out and for accepting an invitation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tutelage.web.deps import (
    SESSION_COOKIE,
    CurrentActor,
    DbSession,
    check_form_csrf,
    clear_session_cookie,
    form_csrf_token,
    get_settings,
    safe_next,
    set_form_csrf_cookie,
    set_session_cookie,
)
from tutelage.web.pages import render
from tutelage.web.sign_in import client_address, sign_in_request, user_agent
from tutelage.workspace.accounts import (
    accept_invitation,
    end_web_session,
    sign_out_everywhere,
    start_web_session,
)
from tutelage.workspace.errors import NotFound, Unauthenticated, WorkspaceError
from tutelage.workspace.throttling import Throttled

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

# Empty defaults: a missing field then fails like a wrong one, on the form, not as a 422 page.
FormText = Annotated[str, Form(max_length=1024)]


def _form_page(
    request: Request, name: str, context: Mapping[str, object], *, status: int = 200
) -> HTMLResponse:
    """Render a form shown before sign-in, with its double-submit CSRF token and cookie."""
    token = form_csrf_token(request)
    response = render(request, name, {**context, "form_token": token}, status_code=status)
    set_form_csrf_cookie(response, token, get_settings(request))
    return response


def _signed_in_redirect(request: Request, token: str, to: str) -> RedirectResponse:
    response = RedirectResponse(to, status_code=303)
    set_session_cookie(response, token, get_settings(request))
    return response


@router.get("/login")
def login_form(
    request: Request, next_path: Annotated[str, Query(alias="next")] = "/"
) -> HTMLResponse:
    context = {"next": safe_next(next_path), "email": "", "error": None}
    return _form_page(request, "login.html", context)


@router.post("/login", response_model=None)
def login_submit(
    request: Request,
    email: FormText = "",
    password: FormText = "",
    csrf_token: FormText = "",
    next_path: Annotated[str, Form(alias="next", max_length=2048)] = "/",
) -> HTMLResponse | RedirectResponse:
    check_form_csrf(request, csrf_token)
    try:
        signed_in = sign_in_request(request, email=email, password=password)
    except (Unauthenticated, Throttled) as exc:
        context = {"next": safe_next(next_path), "email": email, "error": exc.message}
        page = _form_page(request, "login.html", context, status=exc.status)
        if isinstance(exc, Throttled):
            page.headers["Retry-After"] = str(exc.retry_after)
        return page
    return _signed_in_redirect(request, signed_in.token, safe_next(next_path))


@router.post("/logout")
def logout(
    request: Request,
    actor: CurrentActor,
    session: DbSession,
    everywhere: Annotated[bool, Form()] = False,
) -> RedirectResponse:
    """Sign out here, or (`everywhere`, the form's second button) on every device."""
    token = request.cookies.get(SESSION_COOKIE)
    if everywhere:
        sign_out_everywhere(session, actor=actor)
    elif token and actor.csrf_token is not None:
        end_web_session(session, token=token)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, get_settings(request))
    return response


@router.get("/invite/{token}")
def invitation_form(request: Request, token: str) -> HTMLResponse:
    context = {"token": token, "handle": "", "display_name": "", "error": None}
    return _form_page(request, "invite.html", context)


@router.post("/invite/{token}", response_model=None)
def invitation_submit(
    request: Request,
    token: str,
    session: DbSession,
    handle: FormText = "",
    display_name: FormText = "",
    password: FormText = "",
    csrf_token: FormText = "",
) -> HTMLResponse | RedirectResponse:
    """Create the invited account and sign it in; a refused form is shown again."""
    check_form_csrf(request, csrf_token)
    try:
        # A savepoint, so a refusal half-way leaves nothing behind in this transaction.
        with session.begin_nested():
            user = accept_invitation(
                session, token=token, handle=handle, password=password, display_name=display_name
            )
    except NotFound:
        raise
    except WorkspaceError as exc:
        context = {
            "token": token,
            "handle": handle,
            "display_name": display_name,
            "error": exc.message,
        }
        return _form_page(request, "invite.html", context, status=exc.status)
    session_token, _ = start_web_session(
        session,
        user=user,
        idle=get_settings(request).session_idle,
        address=client_address(request),
        user_agent=user_agent(request),
    )
    return _signed_in_redirect(request, session_token, "/")
