"""Offboarding over the API: deactivate and reactivate accounts (admins), and list and
revoke API tokens (anyone their own, admins anyone's)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tutelage.web.deps import AdminActor, CurrentActor, DbSession
from tutelage.web.params import Id
from tutelage.workspace.revocation import (
    activate_user,
    deactivate_user,
    list_tokens,
    revoke_token,
)

router = APIRouter(tags=["access"])


class Deactivation(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/users/{handle}/deactivate")
def post_deactivate(
    handle: str, body: Deactivation, session: DbSession, actor: AdminActor
) -> dict[str, int]:
    """End the account's sessions and tokens now; what it held goes back to the queue."""
    released = deactivate_user(session, actor=actor, handle=handle, reason=body.reason)
    return {"leases_released": released}


@router.post("/users/{handle}/activate", status_code=204)
def post_activate(handle: str, session: DbSession, actor: AdminActor) -> None:
    activate_user(session, actor=actor, handle=handle)


@router.get("/users/{handle}/tokens")
def get_tokens(handle: str, session: DbSession, actor: CurrentActor) -> list[dict[str, Any]]:
    """The account's tokens (never their secrets), newest first."""
    return [asdict(t) for t in list_tokens(session, actor=actor, handle=handle)]


@router.get("/me/tokens")
def get_my_tokens(session: DbSession, actor: CurrentActor) -> list[dict[str, Any]]:
    return [asdict(t) for t in list_tokens(session, actor=actor, handle=actor.handle)]


@router.delete("/tokens/{token_id}", status_code=204)
def delete_token(token_id: Id, session: DbSession, actor: CurrentActor) -> None:
    """Revoke a token: its next request is refused."""
    revoke_token(session, actor=actor, token_id=token_id)
