"""A request's sign-in: the throttled check of e-mail and password, from the client's address."""

from __future__ import annotations

from fastapi import Request

from tutelage.web.deps import get_settings, get_store
from tutelage.workspace.signin import SignedIn, sign_in

__all__ = ["client_address", "sign_in_request", "user_agent"]


def client_address(request: Request) -> str:
    """The client's address (behind a proxy, uvicorn's --forwarded-allow-ips sets it)."""
    return request.client.host if request.client else "unknown"


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")


def sign_in_request(request: Request, *, email: str, password: str) -> SignedIn:
    """Sign in with the server's throttling policy; the route must hold no store session
    (this writes in sessions of its own: the failure count commits though the sign-in fails)."""
    settings = get_settings(request)
    return sign_in(
        get_store(request),
        email=email,
        password=password,
        address=client_address(request),
        user_agent=user_agent(request),
        policy=settings.throttle,
        idle=settings.session_idle,
    )
