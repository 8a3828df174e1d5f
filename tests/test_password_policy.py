"""Weak passwords are refused, with the reason, by every way an account gets one: the CLI,
the admin API, the admin page and an invitation (API and page); a huge one is refused
before it is hashed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tutelage.store import Store
from tutelage.store.tables import UserRow
from tutelage.web import ServerSettings, create_app
from tutelage.workspace import accounts
from tutelage.workspace.accounts import create_user
from tutelage.workspace.passwords import WeakPassword, check_password

GOOD = "correct horse battery"
# (password, e-mail, what the refusal says)
WEAK = [
    ("1111111111", "ada@example.org", "too easy to guess: repeats"),
    ("password12", "ada@example.org", "too easy to guess: this is a very common password"),
    ("ada.lovelace", "ada.lovelace@example.org", "close to) your e-mail address"),
    ("short", "ada@example.org", "at least 10 characters"),
]


@pytest.mark.parametrize(("password", "email", "why"), WEAK)
def test_the_policy_refuses_weak_passwords_and_says_why(
    password: str, email: str, why: str
) -> None:
    with pytest.raises(WeakPassword) as refused:
        check_password(password, email=email, handle="ada")
    assert why in str(refused.value)


def test_a_password_like_the_handle_is_refused(store: Store) -> None:
    with pytest.raises(WeakPassword, match="your handle"), store.session() as session:
        create_user(session, email="x@example.org", password="drcardio-99", handle="dr-cardio")


def test_a_ten_megabyte_password_is_refused_before_it_is_hashed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_hashing(_: str) -> str:
        raise AssertionError("the password was hashed")

    monkeypatch.setattr(accounts, "hash_password", no_hashing)
    with pytest.raises(WeakPassword, match="at most 1024 bytes"), store.session() as session:
        create_user(session, email="x@example.org", password="x" * 10_000_000, handle="x")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(UserRow)) == 0


def test_the_cli_refuses_a_weak_password(tmp_path: Path, cli: Callable[..., Any]) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    weak = tmp_path / "weak"
    weak.write_text("password12\n", "utf-8")
    refused = cli(
        "users", "create", "--email", "b@example.org", "--handle", "b",
        "--password-file", str(weak), "--db", db,
    )  # fmt: skip
    assert refused.returncode == 1 and "very common password" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.fixture
def admin(store: Store) -> Iterator[tuple[TestClient, str]]:
    with store.session() as session:
        create_user(session, email="root@example.org", password=GOOD, handle="root", role="admin")
    with TestClient(create_app(store, ServerSettings()), follow_redirects=False) as client:
        answer = client.post(
            "/api/v1/auth/login", json={"email": "root@example.org", "password": GOOD}
        )
        yield client, answer.json()["csrf_token"]


def users(store: Store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(UserRow)) or 0


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, name
    return found.group(1)


def test_the_admin_api_and_page_refuse_weak_passwords(
    admin: tuple[TestClient, str], store: Store
) -> None:
    client, csrf = admin
    for password, email, why in WEAK[:3]:
        answer = client.post(
            "/api/v1/users",
            json={"email": email, "handle": "ada", "password": password},
            headers={"X-CSRF-Token": csrf},
        )
        assert answer.status_code == 422 and why in answer.json()["message"], answer.text
        page = client.post(
            "/admin/users",
            data={"email": email, "handle": "ada", "password": password, "csrf_token": csrf},
        )
        assert page.status_code == 422 and why in page.text.replace("&#34;", '"')
    huge = client.post(
        "/api/v1/users",
        json={"email": "h@example.org", "handle": "h", "password": "é" * 600},  # 1,200 bytes
        headers={"X-CSRF-Token": csrf},
    )
    assert huge.status_code == 422 and "at most 1024 bytes" in huge.json()["message"]
    assert users(store) == 1


def test_an_invitation_refuses_a_weak_password_on_the_api_and_the_page(
    admin: tuple[TestClient, str], store: Store
) -> None:
    client, csrf = admin
    url = client.post(
        "/api/v1/invitations", json={"email": "newbie@example.org"}, headers={"X-CSRF-Token": csrf}
    ).json()["url"]
    client.cookies.clear()
    api = client.post(
        f"/api/v1/invitations/{url.rsplit('/', 1)[1]}/accept",
        json={"handle": "newbie", "password": "newbie1234"},
    )
    assert api.status_code == 422 and "your e-mail address" in api.json()["message"]
    form = client.get(url)
    page = client.post(
        url,
        data={
            "handle": "newbie",
            "password": "password12",
            "csrf_token": _field(form.text, "csrf_token"),
        },
    )
    assert page.status_code == 422 and "very common password" in page.text
    assert users(store) == 1
