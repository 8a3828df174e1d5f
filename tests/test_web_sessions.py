"""Browser sessions end when left idle, at their absolute lifetime, and on every device at
once when asked: through the real app on a real store. Time is moved by rewriting a
session's deadlines in the store, never by waiting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tutelage.store import Store
from tutelage.store.workspace_tables import AuditRow, WebSessionRow
from tutelage.web import ServerSettings, create_app
from tutelage.workspace.accounts import create_api_token, create_user

PASSWORD = "correct horse battery"
IDLE = timedelta(minutes=30)


@pytest.fixture
def app(store: Store) -> object:
    with store.session() as session:
        create_user(
            session, email="ana@example.org", password=PASSWORD, handle="ana", role="expert"
        )
    return create_app(store, ServerSettings(session_idle_minutes=30))


@pytest.fixture
def device(app: object) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as client:  # type: ignore[arg-type]
        yield client


def sign_in(client: TestClient) -> str:
    answer = client.post(
        "/api/v1/auth/login", json={"email": "ana@example.org", "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    csrf: str = answer.json()["csrf_token"]
    return csrf


def deadline(store: Store) -> datetime:
    """The idle deadline of the one session, as an aware time."""
    with store.session() as session:
        expires = session.scalars(select(WebSessionRow.expires_at)).one()
    return expires if expires.tzinfo else expires.replace(tzinfo=UTC)


def move(store: Store, **values: datetime) -> None:
    with store.session() as session:
        session.execute(update(WebSessionRow).values(**values))


def me(client: TestClient) -> int:
    return client.get("/api/v1/me").status_code


def test_a_session_ends_when_left_idle_and_each_request_moves_the_deadline_on(
    store: Store, device: TestClient
) -> None:
    sign_in(device)
    left = deadline(store) - datetime.now(UTC)
    assert IDLE - timedelta(minutes=1) < left <= IDLE

    move(store, expires_at=datetime.now(UTC) + timedelta(minutes=5))  # 25 minutes idle
    assert me(device) == 200
    assert deadline(store) - datetime.now(UTC) > IDLE - timedelta(minutes=1)

    move(store, expires_at=datetime.now(UTC) - timedelta(seconds=1))  # 30 minutes idle
    answer = device.get("/api/v1/me")
    assert answer.status_code == 401 and "expired" in answer.text
    assert device.get("/").status_code == 303  # the pages send it to sign in again


def test_a_busy_session_still_ends_seven_days_after_sign_in(
    store: Store, device: TestClient
) -> None:
    sign_in(device)
    move(store, created_at=datetime.now(UTC) - timedelta(days=7, minutes=1))
    assert deadline(store) > datetime.now(UTC)  # never idle
    assert me(device) == 401


@pytest.mark.parametrize("via", ["api", "form"])
def test_signing_out_everywhere_ends_every_session_but_keeps_api_tokens(
    store: Store, app: object, via: str
) -> None:
    with (
        TestClient(app, follow_redirects=False) as laptop,  # type: ignore[arg-type]
        TestClient(app, follow_redirects=False) as phone,  # type: ignore[arg-type]
        TestClient(app, follow_redirects=False) as tablet,  # type: ignore[arg-type]
    ):
        csrf = sign_in(laptop)
        sign_in(phone)
        with store.session() as session:
            user_id = session.scalars(select(WebSessionRow.user_id)).first()
            assert user_id is not None
            token = create_api_token(session, user_id=user_id, name="script")

        csrf_tablet = sign_in(tablet)  # a plain sign-out ends only its own session
        ended = tablet.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf_tablet})
        assert ended.status_code == 204 and me(tablet) == 401
        assert me(laptop) == 200 and me(phone) == 200

        if via == "api":
            answer = laptop.post(
                "/api/v1/auth/logout?everywhere=true", headers={"X-CSRF-Token": csrf}
            )
            assert answer.status_code == 204
        else:
            answer = laptop.post("/logout", data={"csrf_token": csrf, "everywhere": "true"})
            assert answer.status_code == 303 and answer.headers["location"] == "/login"
        assert me(laptop) == 401 and me(phone) == 401
        bearer = laptop.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert bearer.status_code == 200
    with store.session() as session:
        record = session.scalars(
            select(AuditRow).where(AuditRow.action == "user.sign_out_everywhere")
        ).one()
        assert record.target == "ana" and record.details["sessions_ended"] == 2
