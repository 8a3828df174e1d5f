"""The account pages through the real app on a real store: an admin offboards an expert
(deactivate with a reason, revoke a token, let them back), an expert manages their own
API tokens, and nobody reaches a token that is not theirs."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tutelage.store import Store
from tutelage.store.tables import UserRow
from tutelage.store.workspace_tables import ApiTokenRow, AuditRow
from tutelage.web import ServerSettings, create_app
from tutelage.workspace.accounts import create_api_token, create_user

PASSWORD = "correct horse battery"


@pytest.fixture
def app(store: Store) -> object:
    with store.session() as session:
        for handle, role in (("root", "admin"), ("ana", "expert"), ("bo", "expert")):
            create_user(
                session, email=f"{handle}@example.org", password=PASSWORD, handle=handle, role=role
            )
    return create_app(store, ServerSettings())


def browser(app: object, handle: str) -> tuple[TestClient, str]:
    """A signed-in browser and its CSRF token."""
    client = TestClient(app, follow_redirects=False)  # type: ignore[arg-type]
    answer = client.post(
        "/api/v1/auth/login", json={"email": f"{handle}@example.org", "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return client, answer.json()["csrf_token"]


def token_of(store: Store, handle: str, name: str) -> tuple[int, str]:
    with store.session() as session:
        user_id = session.scalars(select(UserRow.id).where(UserRow.handle == handle)).one()
        secret = create_api_token(session, user_id=user_id, name=name)
    with store.session() as session:
        token_id = session.scalars(select(ApiTokenRow.id).order_by(ApiTokenRow.id.desc())).first()
    assert token_id is not None
    return token_id, secret


def works(client: TestClient, secret: str) -> bool:
    answer = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


@pytest.fixture
def admin(app: object) -> Iterator[tuple[TestClient, str]]:
    client, csrf = browser(app, "root")
    with client:
        yield client, csrf


def test_an_admin_deactivates_an_expert_from_their_page_and_lets_them_back(
    store: Store, app: object, admin: tuple[TestClient, str]
) -> None:
    page, csrf = admin
    _, secret = token_of(store, "ana", "laptop script")
    ana, _ = browser(app, "ana")
    assert 'href="/admin/users/ana"' in page.get("/admin").text
    shown = page.get("/admin/users/ana")
    assert shown.status_code == 200 and "laptop script" in shown.text and secret not in shown.text

    refused = page.post("/admin/users/ana/deactivate", data={"csrf_token": csrf, "reason": " "})
    assert refused.status_code == 422 and "say why" in refused.text
    assert works(ana, secret) and ana.get("/api/v1/me").status_code == 200

    done = page.post(
        "/admin/users/ana/deactivate", data={"csrf_token": csrf, "reason": "contract ended"}
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/admin/users/ana?")
    assert not works(ana, secret) and ana.get("/api/v1/me").status_code == 401
    after = page.get(done.headers["location"]).text
    assert "Deactivated ana" in after and "deactivated" in after
    assert re.search(r"user\.deactivate</td><td>contract ended", after)

    assert page.post("/admin/users/ana/activate", data={"csrf_token": csrf}).status_code == 303
    again, _ = browser(app, "ana")  # signs in again; the old token stays revoked
    assert again.get("/api/v1/me").status_code == 200 and not works(again, secret)
    assert (
        page.post(
            "/admin/users/root/deactivate", data={"csrf_token": csrf, "reason": "x"}
        ).status_code
        == 409
    )


def test_an_admin_revokes_one_token_and_only_of_the_account_named(
    store: Store, admin: tuple[TestClient, str]
) -> None:
    page, csrf = admin
    ana_id, ana_secret = token_of(store, "ana", "ci")
    bo_id, bo_secret = token_of(store, "bo", "notebook")
    wrong = page.post(f"/admin/users/ana/tokens/{bo_id}/revoke", data={"csrf_token": csrf})
    assert wrong.status_code == 404 and works(page, bo_secret)
    revoked = page.post(f"/admin/users/ana/tokens/{ana_id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303 and not works(page, ana_secret) and works(page, bo_secret)
    with store.session() as session:
        entry = session.scalars(select(AuditRow).where(AuditRow.action == "token.revoke")).one()
        assert entry.target == "ana" and entry.details["token_id"] == ana_id


def test_an_expert_creates_and_revokes_their_own_tokens_and_no_one_elses(
    store: Store, app: object
) -> None:
    ana, csrf = browser(app, "ana")
    bo_id, bo_secret = token_of(store, "bo", "notebook")
    with ana:
        assert ana.get("/admin/users/bo").status_code == 403
        created = ana.post("/account/tokens", data={"csrf_token": csrf, "name": "my script"})
        assert created.status_code == 201
        match = re.search(r'value="(tut_[^"]+)"', created.text)
        assert match is not None
        secret = match.group(1)
        assert works(ana, secret)
        listed = ana.get("/account").text
        assert "my script" in listed and secret not in listed and "notebook" not in listed

        with store.session() as session:
            mine = session.scalars(select(ApiTokenRow.id).where(ApiTokenRow.name == "my script"))
            token_id = mine.one()
        other = ana.post(f"/account/tokens/{bo_id}/revoke", data={"csrf_token": csrf})
        assert other.status_code == 404 and works(ana, bo_secret)
        assert ana.post(f"/account/tokens/{token_id}/revoke", data={}).status_code == 403
        revoked = ana.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf})
        assert revoked.status_code == 303 and not works(ana, secret)
        assert "Revoked token" in ana.get(revoked.headers["location"]).text
