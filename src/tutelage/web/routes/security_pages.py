"""The admin page of sign-in locks: which client addresses and accounts are locked after
failed sign-ins, until when, and a button to lift each (recorded in the audit log)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tutelage.store.tables import as_utc
from tutelage.web.deps import AdminActor, DbSession
from tutelage.web.pages import render
from tutelage.web.params import Id
from tutelage.workspace.throttling import active_locks, lift_lock

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_DONE_CHARS = 300


def _utc(moment: datetime) -> str:
    return as_utc(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@router.get("/admin/sign-in-locks")
def locks_page(request: Request, session: DbSession, actor: AdminActor) -> HTMLResponse:
    now = datetime.now(UTC)
    locks = [
        {
            "id": row.id,
            "scope": row.scope,
            "key": row.key,
            "until": _utc(row.locked_until),
            "seconds": int((as_utc(row.locked_until) - now).total_seconds()),
            "locks": row.locks,
        }
        for row in active_locks(session, now=now)
        if row.locked_until is not None
    ]
    done = request.query_params.get("done", "")[:_DONE_CHARS]
    context = {"locks": locks, "done": done}
    return render(request, "admin_sign_in_locks.html", context, actor=actor)


@router.post("/admin/sign-in-locks/{lock_id}/lift")
def lift_form(lock_id: Id, session: DbSession, actor: AdminActor) -> RedirectResponse:
    row = lift_lock(session, lock_id=lock_id, actor_id=actor.user_id)
    message = f"Lifted the lock of {row.scope} {row.key}: it may sign in again at once."
    return RedirectResponse(f"/admin/sign-in-locks?{urlencode({'done': message})}", status_code=303)
