"""Who a request acts for, the transaction it runs in, and the CSRF checks.

A request is authenticated by an API token (``Authorization: Bearer tut_...``) or by the
browser session cookie. Browsers attach cookies to requests that other sites trigger, so
every state-changing request authenticated by the cookie must also carry the session's
CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``); a Bearer token is never
sent automatically, so it needs none.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import anyio
from fastapi import Depends, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tutelage.store import Store
from tutelage.web.settings import ServerSettings
from tutelage.workspace.accounts import (
    SESSION_IDLE_TIMEOUT,
    SESSION_LIFETIME,
    Actor,
    user_for_api_token,
    user_for_web_session,
)
from tutelage.workspace.errors import Forbidden, Unauthenticated

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "FORM_CSRF_COOKIE",
    "HOT_PATH_SECURITY",
    "SESSION_COOKIE",
    "ActorWork",
    "AdminActor",
    "Credentials",
    "CurrentActor",
    "DbSession",
    "InTransaction",
    "ReviewerActor",
    "bearer_scheme",
    "check_form_csrf",
    "clear_session_cookie",
    "current_actor",
    "db_session",
    "form_csrf_token",
    "get_settings",
    "get_store",
    "in_transaction",
    "login_url",
    "request_credentials",
    "require_admin",
    "require_reviewer",
    "safe_next",
    "session_cookie_scheme",
    "set_form_csrf_cookie",
    "set_session_cookie",
    "submitted_csrf_token",
]

SESSION_COOKIE = "tutelage_session"
# Double-submit token for the forms shown before there is a session (sign-in, invitation).
FORM_CSRF_COOKIE = "tutelage_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

bearer_scheme = HTTPBearer(auto_error=False, description="A personal API token: tut_...")
session_cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="The browser session cookie."
)


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def _transaction_slots(request: Request) -> anyio.CapacityLimiter:
    """Return the app's limiter of transactions in flight (one per store slot).

    Requests wait for a slot in the event loop, not in a worker thread: if they waited in
    threads, once every thread waits (SQLite has one writer; PostgreSQL's pool is finite)
    the request that holds the store would need a thread for its next step and none would
    be free: a deadlock. Waiting here holds no thread.
    """
    slots: anyio.CapacityLimiter | None = getattr(request.app.state, "transaction_slots", None)
    if slots is None:
        slots = anyio.CapacityLimiter(get_store(request).concurrent_transactions)
        request.app.state.transaction_slots = slots
    return slots


async def _transaction_slot(request: Request) -> AsyncIterator[None]:
    async with _transaction_slots(request):
        yield


def db_session(
    request: Request, _slot: Annotated[None, Depends(_transaction_slot, scope="function")]
) -> Iterator[Session]:
    """Yield the request's session: one transaction, committed before the response is sent."""
    with get_store(request).session() as session:
        yield session


# scope="function": commit (or roll back) when the route returns, before the response goes
# out, so a client never sees success for a write that then failed to commit.
DbSession = Annotated[Session, Depends(db_session, scope="function")]


async def submitted_csrf_token(request: Request) -> str | None:
    """Return the CSRF token a request carries in its header or form body, if any."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.method in _SAFE_METHODS:
        return None
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(_FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def _same(expected: str | None, submitted: str | None) -> bool:
    if not expected or not submitted:
        return False
    return secrets.compare_digest(expected.encode(), submitted.encode())


@dataclass(frozen=True)
class Credentials:
    """What a request offers to say who it is: read from headers, checked against the store."""

    bearer: str | None
    cookie: str | None
    csrf: str | None
    changes_state: bool
    idle: timedelta = SESSION_IDLE_TIMEOUT  # a browser session's idle timeout

    def actor(self, session: Session) -> Actor:
        """Return the signed-in actor; raise Unauthenticated (401) or, for CSRF, Forbidden."""
        if self.bearer is not None:
            return user_for_api_token(session, token=self.bearer)
        if not self.cookie:
            raise Unauthenticated("not signed in")
        actor = user_for_web_session(session, token=self.cookie, idle=self.idle)
        if self.changes_state and not _same(actor.csrf_token, self.csrf):
            raise Forbidden(
                f"missing or wrong CSRF token: send the {CSRF_FIELD} form field "
                f"or the {CSRF_HEADER} header",
                code="csrf",
            )
        return actor


async def request_credentials(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(session_cookie_scheme)],
    submitted_csrf: Annotated[str | None, Depends(submitted_csrf_token)],
) -> Credentials:
    return Credentials(
        bearer=None if bearer is None else bearer.credentials,
        cookie=cookie,
        csrf=submitted_csrf,
        changes_state=request.method not in _SAFE_METHODS,
        idle=get_settings(request).session_idle,
    )


def current_actor(
    session: DbSession, credentials: Annotated[Credentials, Depends(request_credentials)]
) -> Actor:
    """Return the signed-in actor; raise Unauthenticated (401) or, for CSRF, Forbidden (403)."""
    return credentials.actor(session)


CurrentActor = Annotated[Actor, Depends(current_actor)]

_Result = TypeVar("_Result")


_Work = tuple[Callable[[Session, Actor], Any], Credentials, "asyncio.Future[Any]"]


class GroupCommit:
    """Run the hot paths' work for a SQLite store in shared transactions (group commit).

    SQLite runs one transaction at a time, so under load requests queue for the writer.
    The ones waiting when the writer comes free run together, one after another, in one
    transaction: one BEGIN, one COMMIT and one fsync for all of them instead of one each.
    Each still gets its answer only once that commit is done, so nothing is acknowledged
    before it is durable, and each sees the others' work as if they had run in turn.

    If one of them fails (a 404, a conflict), the transaction is rolled back; the failing
    one runs again alone, in its own transaction, and the others again together. A
    failure at commit, or a second failure, and each runs alone. So a failure never
    takes others' work with it. The work runs in the event loop while the writer is free
    (statements take microseconds) and the commit in a worker thread; recovery, and a
    group that finds the writer held (by another process), run in a worker thread that
    waits for it.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: list[_Work] = []
        self._busy = False

    def run(
        self, work: Callable[[Session, Actor], _Result], credentials: Credentials
    ) -> asyncio.Future[_Result]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Result] = loop.create_future()
        self._waiting.append((work, credentials, future))
        if not self._busy:
            self._busy = True
            # after the callbacks ready now, so that the requests they bring join in
            loop.call_soon(self._drain)
        return future

    def _drain(self) -> None:
        group, self._waiting = self._waiting, []
        loop = asyncio.get_running_loop()
        transaction = self.store.session_if_free()
        if transaction is None:
            self._in_thread(group, None)
            return
        session = transaction.__enter__()
        results: list[Any] = []
        try:
            for work, credentials, _ in group:
                results.append(work(session, credentials.actor(session)))
        except Exception:
            transaction.__exit__(*sys.exc_info())  # rolls back and frees the writer
            self._in_thread(group, len(results))
            return
        # The commit (its fsync: 2 ms at the median under load here) runs in a worker thread,
        # so that the event loop reads and answers other requests meanwhile; the next
        # group starts once it is done, and only then are this group's answers sent.
        committing = loop.run_in_executor(None, transaction.__exit__, None, None, None)
        committing.add_done_callback(lambda done: self._committed(group, results, done))

    def _committed(self, group: list[_Work], results: list[Any], done: asyncio.Future[Any]) -> None:
        if done.exception() is not None:
            self._in_thread(group, len(group))
            return
        for (_, _, future), result in zip(group, results, strict=True):
            _settle(future, result, None)
        self._next()

    def _in_thread(self, group: list[_Work], failed: int | None) -> None:
        done = asyncio.get_running_loop().run_in_executor(None, self._recover, group, failed)
        done.add_done_callback(lambda _: self._next())

    def _recover(self, group: list[_Work], failed: int | None) -> None:
        """In a worker thread, waiting for the writer: `group` again, after the failure of
        its work `failed` (len(group): the commit; None: it has not run)."""
        settle = _threadsafe_settle
        if failed is None:
            failed = _run_group(self.store.session(), group, settle)
            if failed is None:
                return
        if failed < len(group):
            _run_group(self.store.session(), [group[failed]], settle, alone=True)
            group = group[:failed] + group[failed + 1 :]
            if not group or _run_group(self.store.session(), group, settle) is None:
                return
        for work in group:
            _run_group(self.store.session(), [work], settle, alone=True)

    def _next(self) -> None:
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._drain)
        else:
            self._busy = False


def _run_group(
    session: AbstractContextManager[Session],
    group: list[_Work],
    settle: Callable[[asyncio.Future[Any], Any, Exception | None], None],
    *,
    alone: bool = False,
) -> int | None:
    """Run `group` in the one transaction `session` opens and settle its futures; return
    None, or the index of the work that failed (len(group) for the commit), settling
    nothing. `alone`: a group of one, whose failure is its answer."""
    results = []
    try:
        with session as open_session:
            for work, credentials, _ in group:
                results.append(work(open_session, credentials.actor(open_session)))
    except Exception as exc:
        if alone:
            settle(group[0][2], None, exc)
        return len(results)
    for (_, _, future), result in zip(group, results, strict=True):
        settle(future, result, None)
    return None


def _settle(future: asyncio.Future[Any], result: Any, error: Exception | None) -> None:
    if future.done():  # the request was cancelled (the client went away)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _threadsafe_settle(future: asyncio.Future[Any], result: Any, error: Exception | None) -> None:
    future.get_loop().call_soon_threadsafe(_settle, future, result, error)


def _group_commit(request: Request) -> GroupCommit:
    group: GroupCommit | None = getattr(request.app.state, "group_commit", None)
    if group is None:
        group = GroupCommit(get_store(request))
        request.app.state.group_commit = group
    return group


@dataclass(frozen=True)
class ActorWork:
    """Run a function of (session, actor) for this request in one transaction.

    The expert's hot paths (next task, submit) use this instead of `DbSession` and
    `CurrentActor`, which FastAPI runs as separate steps in worker threads: a thread hop
    each, which costs more than the SQL. With SQLite, the work joins a `GroupCommit`;
    with PostgreSQL, authentication, the work and the commit run in one worker thread
    once a pooled connection is free. The result comes back only once committed.
    """

    request: Request
    credentials: Credentials

    async def __call__(self, work: Callable[[Session, Actor], _Result]) -> _Result:
        if get_store(self.request).is_local:
            return await _group_commit(self.request).run(work, self.credentials)
        async with _transaction_slots(self.request):
            return await anyio.to_thread.run_sync(self._run, work)

    def _run(self, work: Callable[[Session, Actor], _Result]) -> _Result:
        with get_store(self.request).session() as session:
            return work(session, self.credentials.actor(session))


async def in_transaction(request: Request) -> ActorWork:
    """The hot paths' one dependency. It reads the same credentials as
    `request_credentials`, straight from the request: FastAPI's four nested dependencies
    cost a tenth of a next-task call. (The routes list the security schemes in their
    OpenAPI entry themselves: `HOT_PATH_SECURITY`.)"""
    bearer = None
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        bearer = value
    credentials = Credentials(
        bearer=bearer,
        cookie=request.cookies.get(SESSION_COOKIE),
        csrf=await submitted_csrf_token(request),
        changes_state=request.method not in _SAFE_METHODS,
        idle=get_settings(request).session_idle,
    )
    return ActorWork(request, credentials)


# What `request_credentials`' dependencies would list in the OpenAPI document.
HOT_PATH_SECURITY: dict[str, Any] = {"security": [{"HTTPBearer": []}, {"APIKeyCookie": []}]}


InTransaction = Annotated[ActorWork, Depends(in_transaction)]


def require_admin(actor: CurrentActor) -> Actor:
    if not actor.is_admin:
        raise Forbidden("only an admin may do this")
    return actor


def require_reviewer(actor: CurrentActor) -> Actor:
    if not actor.is_reviewer:
        raise Forbidden("only a reviewer or an admin may do this")
    return actor


AdminActor = Annotated[Actor, Depends(require_admin)]
ReviewerActor = Annotated[Actor, Depends(require_reviewer)]


def set_session_cookie(response: Response, token: str, settings: ServerSettings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: ServerSettings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=settings.secure_cookies, httponly=True, samesite="lax"
    )


def form_csrf_token(request: Request) -> str:
    """Return the double-submit token for a sign-in or invitation form (its cookie's, or new)."""
    return request.cookies.get(FORM_CSRF_COOKIE) or secrets.token_urlsafe(32)


def set_form_csrf_cookie(response: Response, token: str, settings: ServerSettings) -> None:
    response.set_cookie(
        FORM_CSRF_COOKIE,
        token,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def check_form_csrf(request: Request, submitted: str) -> None:
    """Refuse (403) a sign-in or invitation form whose token does not match its cookie."""
    if not _same(request.cookies.get(FORM_CSRF_COOKIE), submitted):
        raise Forbidden(
            "this form has expired or cookies are off: reload the page and try again",
            code="csrf",
        )


def safe_next(value: str | None) -> str:
    """Return `value` if it is a path on this site, else "/" (no open redirects)."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        # Browsers read a backslash as a slash: "/\\evil.example" is another host.
        or "\\" in value
        or any(ord(char) < 32 or ord(char) == 127 for char in value)
    ):
        return "/"
    return value


def login_url(request: Request) -> str:
    """Return the sign-in page's URL, coming back to this page afterwards if it is a GET."""
    if request.method != "GET":
        return "/login"
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?" + urlencode({"next": here})
