"""Sign-in throttling through the real app on a real store: wrong passwords lock the client
address, then the account (but not for the addresses its owner signs in from), each lock
ends by itself, and an admin can see and lift one. Time is moved by rewriting a lock's
end in the store, never by waiting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tutelage.store import Store
from tutelage.store.workspace_tables import AuditRow, LoginThrottleRow
from tutelage.web import ServerSettings, create_app
from tutelage.workspace.accounts import create_user

PASSWORD = "correct horse battery"
ANA = "ana@example.org"


@pytest.fixture
def app(store: Store) -> object:
    with store.session() as session:
        create_user(session, email=ANA, password=PASSWORD, handle="ana")
        create_user(
            session, email="root@example.org", password=PASSWORD, handle="root", role="admin"
        )
    settings = ServerSettings(
        login_address_failures=3, login_account_failures=6, login_lock_seconds=60
    )
    return create_app(store, settings)


@contextmanager
def client_at(app: object, address: str) -> Iterator[TestClient]:
    with TestClient(app, client=(address, 40000)) as client:  # type: ignore[arg-type]
        yield client


def login(client: TestClient, password: str, email: str = ANA) -> int:
    return client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    ).status_code


def end_locks(store: Store) -> None:
    """As if the locks' time had passed."""
    with store.session() as session:
        session.execute(
            update(LoginThrottleRow).values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )


def audit(store: Store, action: str) -> list[AuditRow]:
    with store.session() as session:
        return list(session.scalars(select(AuditRow).where(AuditRow.action == action)))


def test_wrong_passwords_lock_the_address_and_the_right_one_waits_for_the_lock_to_end(
    app: object, store: Store
) -> None:
    with client_at(app, "10.0.0.1") as client:
        assert [login(client, "wrong guess number") for _ in range(3)] == [401, 401, 401]
        locked = client.post("/api/v1/auth/login", json={"email": ANA, "password": PASSWORD})
        assert locked.status_code == 429
        assert 50 <= int(locked.headers["Retry-After"]) <= 60
        assert locked.json()["error"] == "too_many_sign_ins"
        assert "this address" in locked.json()["message"]
        with client_at(app, "10.0.0.2") as elsewhere:  # per address: others are not held up
            assert login(elsewhere, PASSWORD) == 200
        [entry] = audit(store, "login.locked")
        assert entry.target == "10.0.0.1" and entry.details["scope"] == "address"

        end_locks(store)
        assert login(client, PASSWORD) == 200
        # The next lock of the same address lasts twice as long.
        assert [login(client, "wrong guess number") for _ in range(3)] == [401, 401, 401]
        again = client.post("/api/v1/auth/login", json={"email": ANA, "password": PASSWORD})
        assert again.status_code == 429 and 110 <= int(again.headers["Retry-After"]) <= 120


def test_guesses_from_many_addresses_lock_the_account_but_not_for_its_owner(
    app: object, store: Store
) -> None:
    with client_at(app, "192.168.1.10") as owner:
        assert login(owner, PASSWORD) == 200  # her usual address
    for n in range(3):  # an attacker spreads 6 guesses over three addresses
        with client_at(app, f"203.0.113.{n}") as attacker:
            assert [login(attacker, "password guess!") for _ in range(2)] == [401, 401]
    with client_at(app, "203.0.113.99") as attacker:
        refused = attacker.post("/api/v1/auth/login", json={"email": ANA, "password": PASSWORD})
        assert refused.status_code == 429 and "this account" in refused.json()["message"]
    with client_at(app, "192.168.1.10") as owner:
        assert login(owner, PASSWORD) == 200  # the lock is not for her
    scopes = {entry.details["scope"] for entry in audit(store, "login.locked")}
    assert scopes == {"account"}


def test_an_admin_sees_the_lock_and_lifts_it_and_that_is_in_the_audit_log(
    app: object, store: Store
) -> None:
    with client_at(app, "10.0.0.7") as client:
        for _ in range(3):
            login(client, "wrong guess number")
        assert login(client, PASSWORD) == 429
    with client_at(app, "10.0.0.8") as admin:
        csrf = admin.post(
            "/api/v1/auth/login", json={"email": "root@example.org", "password": PASSWORD}
        ).json()["csrf_token"]
        [lock] = admin.get("/api/v1/login-locks").json()
        assert lock["scope"] == "address" and lock["key"] == "10.0.0.7"
        lifted = admin.delete(f"/api/v1/login-locks/{lock['id']}", headers={"X-CSRF-Token": csrf})
        assert lifted.status_code == 204
        assert admin.get("/api/v1/login-locks").json() == []
    with client_at(app, "10.0.0.7") as client:
        assert login(client, PASSWORD) == 200
    [entry] = audit(store, "login.unlocked")
    assert entry.target == "10.0.0.7"


def test_an_expert_cannot_see_or_lift_locks(app: object) -> None:
    with client_at(app, "10.0.0.9") as client:
        csrf = client.post("/api/v1/auth/login", json={"email": ANA, "password": PASSWORD}).json()[
            "csrf_token"
        ]
        assert client.get("/api/v1/login-locks").status_code == 403
        assert (
            client.delete("/api/v1/login-locks/1", headers={"X-CSRF-Token": csrf}).status_code
            == 403
        )


def test_the_sign_in_page_says_when_to_try_again(app: object) -> None:
    with client_at(app, "10.0.0.11") as client:
        for _ in range(3):
            login(client, "wrong guess number")
        form = client.get("/login")
        token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
        page = client.post(
            "/login", data={"email": ANA, "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )  # fmt: skip
        assert page.status_code == 429 and "try again in" in page.text
        assert int(page.headers["Retry-After"]) > 0


def test_the_admin_page_lists_the_locks_and_lifts_one(app: object, store: Store) -> None:
    with client_at(app, "10.0.0.21") as client:
        for _ in range(3):
            login(client, "wrong guess number")
    with client_at(app, "10.0.0.22") as admin:
        csrf = admin.post(
            "/api/v1/auth/login", json={"email": "root@example.org", "password": PASSWORD}
        ).json()["csrf_token"]
        page = admin.get("/admin/sign-in-locks")
        assert page.status_code == 200 and "10.0.0.21" in page.text
        lock_id = page.text.split('action="/admin/sign-in-locks/')[1].split("/")[0]
        lifted = admin.post(
            f"/admin/sign-in-locks/{lock_id}/lift", data={"csrf_token": csrf},
            follow_redirects=False,
        )  # fmt: skip
        assert lifted.status_code == 303
        assert "Nothing is locked" in admin.get("/admin/sign-in-locks").text
    with client_at(app, "10.0.0.21") as client:
        assert login(client, PASSWORD) == 200
