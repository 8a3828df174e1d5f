"""Sign-in throttling: repeated wrong passwords lock the address, then the account, for a while.

Per client address first: `address_failures` wrong passwords within `window` lock the
address for `first_lock`, and each lock after that (until a quiet `forget_after`) lasts
twice as long, up to `longest_lock`. Per account second, at a higher bar: many failures
from several addresses lock the account, except for addresses that signed into it
successfully before (so that an attacker cannot keep an expert out by guessing from
elsewhere); every lock ends by itself. A sign-in while locked is refused (429 with
Retry-After) before its password is hashed. Locks are written in the audit log, and an
admin can list and lift them.

The state lives in the store (`login_throttles`), so that every server process shares
it. Written here rather than with `limits`: that library counts requests in windows
but has no storage in an SQL database, no growing lock-outs, and no exemption of an
account's known addresses, which are the three things this needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutelage.store.tables import as_utc
from tutelage.store.workspace_tables import LoginThrottleRow
from tutelage.workspace import audit
from tutelage.workspace.errors import NotFound, WorkspaceError

__all__ = [
    "DEFAULT_POLICY",
    "ThrottlePolicy",
    "Throttled",
    "active_locks",
    "lift_lock",
    "record_failure",
    "record_success",
    "refuse_if_locked",
]

ADDRESS, ACCOUNT, KNOWN = "address", "account", "known"
KNOWN_FOR = timedelta(days=30)  # a successful sign-in vouches for its address this long


@dataclass(frozen=True)
class ThrottlePolicy:
    address_failures: int = 5
    account_failures: int = 20
    window: timedelta = timedelta(minutes=15)
    first_lock: timedelta = timedelta(minutes=1)
    longest_lock: timedelta = timedelta(hours=1)
    forget_after: timedelta = timedelta(hours=24)


DEFAULT_POLICY = ThrottlePolicy()


class Throttled(WorkspaceError):
    """Too many failed sign-ins: try again in `retry_after` seconds."""

    status = 429

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, code="too_many_sign_ins")
        self.retry_after = retry_after


def _row(session: Session, scope: str, key: str) -> LoginThrottleRow | None:
    return session.scalar(
        select(LoginThrottleRow).where(LoginThrottleRow.scope == scope, LoginThrottleRow.key == key)
    )


def _known_key(email: str, address: str) -> str:
    return f"{email} {address}"


def refuse_if_locked(session: Session, *, email: str, address: str, now: datetime) -> None:
    """Raise `Throttled` while the address, or the account for an unknown address, is locked."""
    for scope, key, what in ((ADDRESS, address, "this address"), (ACCOUNT, email, "this account")):
        row = _row(session, scope, key)
        if row is None or row.locked_until is None or as_utc(row.locked_until) <= now:
            continue
        if scope == ACCOUNT:
            known = _row(session, KNOWN, _known_key(email, address))
            if known is not None and now - as_utc(known.updated_at) < KNOWN_FOR:
                continue  # its owner signed in from here before: the lock is not for them
        seconds = max(1, int((as_utc(row.locked_until) - now).total_seconds() + 0.999))
        raise Throttled(
            f"too many failed sign-ins for {what}: try again in {seconds} s",
            retry_after=seconds,
        )


def _count(
    session: Session, scope: str, key: str, now: datetime, bar: int, policy: ThrottlePolicy
) -> LoginThrottleRow | None:
    """Count one failure; return the row when it has just been locked."""
    row = _row(session, scope, key)
    if row is None:
        row = LoginThrottleRow(scope=scope, key=key, failures=0, locks=0, window_started_at=now)
        session.add(row)
    if now - as_utc(row.updated_at or now) > policy.forget_after:
        row.locks = 0
    if now - as_utc(row.window_started_at) > policy.window:
        row.failures, row.window_started_at = 0, now
    row.failures += 1
    row.updated_at = now
    if row.failures < bar:
        return None
    lock = min(policy.first_lock * (2**row.locks), policy.longest_lock)
    row.locked_until, row.locks = now + lock, row.locks + 1
    row.failures, row.window_started_at = 0, now
    return row


def record_failure(
    session: Session, *, email: str, address: str, now: datetime, policy: ThrottlePolicy
) -> None:
    """Count a wrong password against the address and the account; lock them at their bar."""
    for scope, key, bar in (
        (ADDRESS, address, policy.address_failures),
        (ACCOUNT, email, policy.account_failures),
    ):
        locked = _count(session, scope, key, now, bar, policy)
        if locked is not None:
            assert locked.locked_until is not None
            audit.record(
                session,
                actor_id=None,
                action="login.locked",
                target=key,
                details={
                    "scope": scope,
                    "seconds": int((locked.locked_until - now).total_seconds()),
                    "lock": locked.locks,
                },
            )


def record_success(session: Session, *, email: str, address: str, now: datetime) -> None:
    """A right password: the address starts afresh and is known to the account."""
    row = _row(session, ADDRESS, address)
    if row is not None:
        row.failures = 0
    known = _row(session, KNOWN, _known_key(email, address))
    if known is None:
        known = LoginThrottleRow(scope=KNOWN, key=_known_key(email, address), window_started_at=now)
        session.add(known)
    known.updated_at = now


def active_locks(session: Session, *, now: datetime) -> list[LoginThrottleRow]:
    """The addresses and accounts locked now, the longest first."""
    rows = session.scalars(
        select(LoginThrottleRow)
        .where(LoginThrottleRow.scope != KNOWN, LoginThrottleRow.locked_until.is_not(None))
        .order_by(LoginThrottleRow.locked_until.desc())
    )
    return [row for row in rows if row.locked_until and as_utc(row.locked_until) > now]


def lift_lock(session: Session, *, lock_id: int, actor_id: int) -> LoginThrottleRow:
    """End a lock now and forget its failures (an admin's decision, in the audit log)."""
    row = session.get(LoginThrottleRow, lock_id)
    if row is None or row.scope == KNOWN:
        raise NotFound(f"no sign-in lock {lock_id}")
    row.locked_until, row.failures, row.locks = None, 0, 0
    audit.record(
        session,
        actor_id=actor_id,
        action="login.unlocked",
        target=row.key,
        details={"scope": row.scope},
    )
    return row
