"""JSON API for accounts: sign in and out, who am I, API tokens, invitations."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tutelage.store.tables import UserRow
from tutelage.web.deps import (
    SESSION_COOKIE,
    AdminActor,
    CurrentActor,
    DbSession,
    clear_session_cookie,
    get_settings,
    set_session_cookie,
)
from tutelage.web.params import BodyId, Password
from tutelage.web.sign_in import sign_in_request
from tutelage.workspace.accounts import (
    Actor,
    accept_invitation,
    create_api_token,
    end_web_session,
    invite,
    sign_out_everywhere,
)

__all__ = ["router"]

router = APIRouter(tags=["accounts"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserOut(BaseModel):
    """What anyone signed in may see of a user (never an e-mail address or a hash)."""

    id: int
    handle: str
    role: str
    expertise: list[str]

    @classmethod
    def of_actor(cls, actor: Actor) -> UserOut:
        return cls(
            id=actor.user_id,
            handle=actor.handle,
            role=actor.role,
            expertise=sorted(actor.expertise),
        )

    @classmethod
    def of_row(cls, user: UserRow) -> UserOut:
        return cls(id=user.id, handle=user.handle, role=user.role, expertise=sorted(user.expertise))


class LoginIn(_Body):
    email: str = Field(max_length=320)
    password: Password


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send as the X-CSRF-Token header with every write.")


class TokenIn(_Body):
    name: str = Field(default="", max_length=200)


class TokenOut(BaseModel):
    name: str
    token: str = Field(description="Shown once: only its hash is stored.")


class InvitationIn(_Body):
    email: str = Field(max_length=320)
    role: str = "expert"
    project_id: BodyId | None = None
    expertise: list[str] = Field(default_factory=list)


class InvitationOut(BaseModel):
    url: str = Field(description="The invitation link's path; it works once.")


class AcceptIn(_Body):
    handle: str = Field(min_length=1, max_length=200)
    password: Password
    display_name: str = Field(default="", max_length=200)


@router.post("/auth/login")
def login(body: LoginIn, request: Request, response: Response) -> LoginOut:
    """Sign in: set the session cookie and return the CSRF token that writes must carry.

    Wrong passwords are counted per client address and per account: past the bar the
    address (or account) is locked for a while, and every sign-in is refused with 429 and
    `Retry-After` until the lock ends, right password or not."""
    signed_in = sign_in_request(request, email=body.email, password=body.password)
    set_session_cookie(response, signed_in.token, get_settings(request))
    return LoginOut(user=UserOut.of_row(signed_in.user), csrf_token=signed_in.csrf_token)


@router.post("/auth/logout", status_code=204)
def logout(
    actor: CurrentActor,
    request: Request,
    response: Response,
    session: DbSession,
    everywhere: bool = False,
) -> None:
    """End the browser session (a request signed with an API token has none to end);
    `?everywhere=true` ends every browser session of the account (API tokens stay: revoke
    those with `DELETE /api/v1/tokens/ID`)."""
    token = request.cookies.get(SESSION_COOKIE)
    if everywhere:
        sign_out_everywhere(session, actor=actor)
    elif token and actor.csrf_token is not None:
        end_web_session(session, token=token)
    clear_session_cookie(response, get_settings(request))


@router.get("/me")
def me(actor: CurrentActor) -> UserOut:
    return UserOut.of_actor(actor)


@router.post("/tokens", status_code=201)
def create_token(body: TokenIn, actor: CurrentActor, session: DbSession) -> TokenOut:
    """Create a personal API token for `Authorization: Bearer ...`."""
    token = create_api_token(session, user_id=actor.user_id, name=body.name)
    return TokenOut(name=body.name, token=token)


@router.post("/invitations", status_code=201)
def create_invitation(body: InvitationIn, actor: AdminActor, session: DbSession) -> InvitationOut:
    """Invite someone by a link that creates their account (admins only)."""
    token = invite(
        session,
        actor_id=actor.user_id,
        email=body.email,
        role=body.role,
        project_id=body.project_id,
        expertise=frozenset(body.expertise),
    )
    return InvitationOut(url=f"/invite/{token}")


@router.post("/invitations/{token}/accept", status_code=201)
def accept(token: str, body: AcceptIn, session: DbSession) -> UserOut:
    """Create the invited account; the link works once."""
    user = accept_invitation(
        session,
        token=token,
        handle=body.handle,
        password=body.password,
        display_name=body.display_name,
    )
    return UserOut.of_row(user)
