"""Seeing and ending browser sessions: a user lists theirs and ends one or all the others, a
password change ends every other one, and an admin ends all of someone's; through the
API and the pages, on a real store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tutelage.store import Store
from tutelage.store.workspace_tables import AuditRow
from tutelage.web import ServerSettings, create_app
from tutelage.workspace.accounts import create_user

PASSWORD = "correct horse battery"
NEW_PASSWORD = "violet lantern orbit"


@pytest.fixture
def app(store: Store) -> object:
    with store.session() as session:
        create_user(session, email="ana@example.org", password=PASSWORD, handle="ana")
        create_user(
            session, email="root@example.org", password=PASSWORD, handle="root", role="admin"
        )
    return create_app(store, ServerSettings())


@contextmanager
def device(app: object, address: str, browser: str) -> Iterator[TestClient]:
    with TestClient(
        app,  # type: ignore[arg-type]
        client=(address, 50000),
        headers={"User-Agent": browser},
        follow_redirects=False,
    ) as client:
        yield client


def sign_in(client: TestClient, email: str = "ana@example.org", password: str = PASSWORD) -> str:
    answer = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["csrf_token"])


def actions(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(AuditRow.action).order_by(AuditRow.id)))


def test_a_user_lists_their_sessions_and_ends_one_then_the_others(
    app: object, store: Store
) -> None:
    with (
        device(app, "10.1.0.1", "Laptop Firefox") as laptop,
        device(app, "10.1.0.2", "Phone Safari") as phone,
        device(app, "10.1.0.3", "Library PC") as library,
    ):
        csrf = sign_in(laptop)
        sign_in(phone)
        sign_in(library)
        listed = laptop.get("/api/v1/me/sessions").json()
        assert [(s["address"], s["user_agent"], s["current"]) for s in listed] == [
            ("10.1.0.3", "Library PC", False),
            ("10.1.0.2", "Phone Safari", False),
            ("10.1.0.1", "Laptop Firefox", True),
        ]
        library_id = listed[0]["id"]
        ended = laptop.delete(f"/api/v1/me/sessions/{library_id}", headers={"X-CSRF-Token": csrf})
        assert ended.status_code == 204
        assert library.get("/api/v1/me").status_code == 401
        assert phone.get("/api/v1/me").status_code == 200
        again = laptop.delete(f"/api/v1/me/sessions/{library_id}", headers={"X-CSRF-Token": csrf})
        assert again.status_code == 404

        others = laptop.post("/api/v1/me/sessions/end-others", headers={"X-CSRF-Token": csrf})
        assert others.json() == {"sessions_ended": 1}
        assert phone.get("/api/v1/me").status_code == 401
        assert laptop.get("/api/v1/me").status_code == 200
    assert {"user.session_end", "user.sign_out_others"} <= set(actions(store))


def test_no_one_ends_a_session_of_another_account(app: object) -> None:
    with device(app, "10.2.0.1", "A") as ana, device(app, "10.2.0.2", "B") as root:
        sign_in(ana)
        csrf = sign_in(root, "root@example.org")
        ana_session = ana.get("/api/v1/me/sessions").json()[0]["id"]
        refused = root.delete(f"/api/v1/me/sessions/{ana_session}", headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 404
        assert ana.get("/api/v1/me").status_code == 200


def test_a_password_change_ends_every_other_session_and_the_old_password(
    app: object, store: Store
) -> None:
    with device(app, "10.3.0.1", "Laptop") as laptop, device(app, "10.3.0.2", "Phone") as phone:
        csrf = sign_in(laptop)
        sign_in(phone)
        wrong = laptop.post(
            "/api/v1/me/password",
            json={"current": "not my password", "new": NEW_PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        assert wrong.status_code == 422 and wrong.json()["error"] == "wrong_password"
        assert phone.get("/api/v1/me").status_code == 200
        weak = laptop.post(
            "/api/v1/me/password",
            json={"current": PASSWORD, "new": "password12"},
            headers={"X-CSRF-Token": csrf},
        )
        assert weak.status_code == 422 and "very common password" in weak.json()["message"]
        changed = laptop.post(
            "/api/v1/me/password",
            json={"current": PASSWORD, "new": NEW_PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        assert changed.json() == {"sessions_ended": 1}
        assert phone.get("/api/v1/me").status_code == 401
        assert laptop.get("/api/v1/me").status_code == 200
    with device(app, "10.3.0.3", "New") as fresh:
        old = fresh.post(
            "/api/v1/auth/login", json={"email": "ana@example.org", "password": PASSWORD}
        )
        assert old.status_code == 401
        sign_in(fresh, password=NEW_PASSWORD)
    assert "user.password_change" in actions(store)


def test_an_admin_ends_every_session_of_a_user_from_the_api_and_the_page(
    app: object, store: Store
) -> None:
    with (
        device(app, "10.4.0.1", "A") as first,
        device(app, "10.4.0.2", "B") as second,
        device(app, "10.4.0.9", "Admin") as admin,
    ):
        sign_in(first)
        csrf = sign_in(admin, "root@example.org")
        ended = admin.post("/api/v1/users/ana/sign-out", headers={"X-CSRF-Token": csrf})
        assert ended.json() == {"sessions_ended": 1}
        assert first.get("/api/v1/me").status_code == 401

        sign_in(second)
        page = admin.get("/admin/users/ana")
        assert "10.4.0.2" in page.text and "End all sessions of ana" in page.text
        done = admin.post("/admin/users/ana/sign-out", data={"csrf_token": csrf})
        assert done.status_code == 303
        assert second.get("/api/v1/me").status_code == 401
        expert = second  # an expert may not do it
        csrf_ana = sign_in(expert)
        refused = expert.post("/api/v1/users/root/sign-out", headers={"X-CSRF-Token": csrf_ana})
        assert refused.status_code == 403
    assert actions(store).count("user.sign_out_everywhere") == 2


def test_the_account_page_lists_sessions_ends_others_and_changes_the_password(
    app: object,
) -> None:
    with device(app, "10.5.0.1", "Laptop") as laptop, device(app, "10.5.0.2", "Phone") as phone:
        csrf = sign_in(laptop)
        sign_in(phone)
        page = laptop.get("/account")
        assert "10.5.0.2" in page.text and "this one" in page.text
        other = re.search(r'action="/account/sessions/(\d+)/end"', page.text)
        assert other is not None
        ended = laptop.post(f"/account/sessions/{other.group(1)}/end", data={"csrf_token": csrf})
        assert ended.status_code == 303 and phone.get("/api/v1/me").status_code == 401

        weak = laptop.post(
            "/account/password",
            data={"current": PASSWORD, "new": "1111111111", "csrf_token": csrf},
        )
        assert weak.status_code == 422 and "too easy to guess" in weak.text
        changed = laptop.post(
            "/account/password",
            data={"current": PASSWORD, "new": NEW_PASSWORD, "csrf_token": csrf},
        )
        assert changed.status_code == 303 and "Password+changed" in changed.headers["location"]
