"""Signing in, CSRF, API tokens and invitations through the real app on a real store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tutelage.store import Store, open_store
from tutelage.store.tables import UserRow
from tutelage.store.workspace_tables import ApiTokenRow, InvitationRow
from tutelage.web import ServerSettings, create_app
from tutelage.web.headers import CONTENT_SECURITY_POLICY
from tutelage.workspace.accounts import create_user

PASSWORD = "correct horse battery"


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, ServerSettings()), follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    """A client for what does not depend on the database (headers, routing, validation)."""
    store = open_store(f"sqlite:///{tmp_path / 'web.db'}")
    with TestClient(create_app(store, ServerSettings()), follow_redirects=False) as test_client:
        yield test_client
    store.close()


def add_user(store: Store, handle: str, role: str = "expert") -> str:
    """Create a user; return their e-mail address."""
    email = f"{handle}@example.org"
    with store.session() as session:
        create_user(
            session,
            email=email,
            password=PASSWORD,
            handle=handle,
            role=role,
            expertise=frozenset({"cardiology"}),
        )
    return email


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the API; return the session's CSRF token."""
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


def count(store: Store, table: type[ApiTokenRow] | type[UserRow]) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


class _Page(HTMLParser):
    """The parts of a page the tests look at: tags with their attributes, and script bodies."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.inline_scripts: list[str] = []
        self._in_script: dict[str, str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if tag == "script":
            self._in_script = attributes

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None and "src" not in self._in_script and data.strip():
            self.inline_scripts.append(self._in_script.get("type", "text/javascript"))

    def value_of(self, name: str) -> str:
        return next(attrs["value"] for tag, attrs in self.tags if attrs.get("name") == name)


def test_login_sets_an_httponly_samesite_cookie_and_me_answers(
    client: TestClient, store: Store
) -> None:
    email = add_user(store, "ada")
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("tutelage_session=")
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP in development; see secure_cookies
    assert response.json()["user"]["handle"] == "ada"

    me = client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json() == {
        "id": response.json()["user"]["id"],
        "handle": "ada",
        "role": "expert",
        "expertise": ["cardiology"],
    }

    secure_app = create_app(store, ServerSettings(secure_cookies=True))
    with TestClient(secure_app, base_url="https://testserver") as secure_client:
        secured = secure_client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
    assert "Secure" in secured.headers["set-cookie"]


def test_a_wrong_password_reads_like_an_unknown_email(client: TestClient, store: Store) -> None:
    email = add_user(store, "ada")
    wrong = client.post("/api/v1/auth/login", json={"email": email, "password": "not it at all"})
    unknown = client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.org", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert "set-cookie" not in wrong.headers
    assert client.get("/api/v1/me").status_code == 401


def test_a_cookie_write_needs_the_csrf_token_in_a_header_or_form_field(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, add_user(store, "ada"))

    missing = client.post("/api/v1/tokens", json={"name": "laptop"})
    wrong = client.post("/api/v1/tokens", json={"name": "laptop"}, headers={"X-CSRF-Token": "x"})
    assert missing.status_code == wrong.status_code == 403
    assert missing.json()["error"] == "csrf"
    assert count(store, ApiTokenRow) == 0

    accepted = client.post(
        "/api/v1/tokens", json={"name": "laptop"}, headers={"X-CSRF-Token": csrf}
    )
    assert accepted.status_code == 201
    assert count(store, ApiTokenRow) == 1

    # A form carries it as the csrf_token field.
    assert client.post("/logout", data={}).status_code == 403
    assert client.get("/api/v1/me").status_code == 200  # still signed in

    signed_out = client.post("/logout", data={"csrf_token": csrf})
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/login"
    assert client.get("/api/v1/me").status_code == 401


def test_a_bearer_token_works_without_csrf_and_is_stored_hashed(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, add_user(store, "ada"))
    token = client.post(
        "/api/v1/tokens", json={"name": "script"}, headers={"X-CSRF-Token": csrf}
    ).json()["token"]
    assert token.startswith("tut_")

    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=bearer).json()["handle"] == "ada"
    # A write with the token and no CSRF token: browsers never send this header by themselves.
    second = client.post("/api/v1/tokens", json={"name": "another"}, headers=bearer)
    assert second.status_code == 201

    with store.session() as session:
        rows = session.scalars(select(ApiTokenRow)).all()
    assert len(rows) == 2
    stored = " ".join(f"{row.name} {row.token_hash}" for row in rows)
    assert token not in stored and token.removeprefix("tut_") not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in {row.token_hash for row in rows}

    unknown = client.get("/api/v1/me", headers={"Authorization": "Bearer tut_unknown"})
    assert unknown.status_code == 401


def test_an_invitation_creates_one_account_with_the_invited_role(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, add_user(store, "root", role="admin"))
    invited = client.post(
        "/api/v1/invitations",
        json={"email": "rev@example.org", "role": "reviewer", "expertise": ["law"]},
        headers={"X-CSRF-Token": csrf},
    )
    assert invited.status_code == 201
    url = invited.json()["url"]
    assert url.startswith("/invite/")
    token = url.removeprefix("/invite/")
    with store.session() as session:
        assert token not in str(session.scalars(select(InvitationRow.token_hash)).all())

    client.cookies.clear()
    body = {"handle": "rev", "password": PASSWORD, "display_name": "R. Eviewer"}
    accepted = client.post(f"/api/v1/invitations/{token}/accept", json=body)
    assert accepted.status_code == 201
    assert accepted.json() == {
        "id": accepted.json()["id"],
        "handle": "rev",
        "role": "reviewer",
        "expertise": ["law"],
    }
    again = client.post(f"/api/v1/invitations/{token}/accept", json={**body, "handle": "rev2"})
    assert again.status_code == 404
    assert again.json()["error"] == "notfound"
    assert count(store, UserRow) == 2

    reviewer_csrf = sign_in(client, "rev@example.org")
    assert client.get("/api/v1/me").json()["role"] == "reviewer"
    refused = client.post(
        "/api/v1/invitations",
        json={"email": "x@example.org"},
        headers={"X-CSRF-Token": reviewer_csrf},
    )
    assert refused.status_code == 403  # only admins invite
    assert refused.json()["error"] == "forbidden"


def test_the_invitation_page_creates_the_account_and_signs_it_in(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, add_user(store, "root", role="admin"))
    url = client.post(
        "/api/v1/invitations", json={"email": "new@example.org"}, headers={"X-CSRF-Token": csrf}
    ).json()["url"]
    client.cookies.clear()

    form = client.get(url)
    assert form.status_code == 200
    form_token = _Page(form.text).value_of("csrf_token")
    short = client.post(
        url, data={"handle": "newbie", "password": "short", "csrf_token": form_token}
    )
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    assert count(store, UserRow) == 1

    created = client.post(
        url, data={"handle": "newbie", "password": PASSWORD, "csrf_token": form_token}
    )
    assert created.status_code == 303
    assert created.headers["location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "Signed in as newbie" in home.text
    assert (
        client.post(
            url, data={"handle": "other", "password": PASSWORD, "csrf_token": form_token}
        ).status_code
        == 404
    )


def test_pages_redirect_to_sign_in_when_signed_out(sqlite_client: TestClient) -> None:
    response = sqlite_client.get("/?tab=2")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2F%3Ftab%3D2"


def test_the_sign_in_page_goes_to_local_next_paths_only(client: TestClient, store: Store) -> None:
    email = add_user(store, "ada")
    for outside in ("//evil.example", "/\\evil.example", "https://evil.example/", "/\tx"):
        shown = _Page(client.get("/login", params={"next": outside}).text)
        assert shown.value_of("next") == "/", outside

    def sign_in_by_form(next_path: str) -> str:
        client.cookies.delete("tutelage_session")
        token = _Page(client.get("/login").text).value_of("csrf_token")
        response = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": token, "next": next_path},
        )
        assert response.status_code == 303
        location: str = response.headers["location"]
        return location

    assert sign_in_by_form("//evil.example/x") == "/"
    assert sign_in_by_form("/projects/7?tab=queue") == "/projects/7?tab=queue"
    assert client.get("/").status_code == 200


def test_the_sign_in_form_needs_its_csrf_cookie(sqlite_client: TestClient) -> None:
    email = "ada@example.org"
    token = _Page(sqlite_client.get("/login").text).value_of("csrf_token")
    sqlite_client.cookies.clear()
    refused = sqlite_client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert refused.status_code == 403
    assert "tutelage_session" not in refused.headers.get("set-cookie", "")

    token = _Page(sqlite_client.get("/login").text).value_of("csrf_token")
    wrong = sqlite_client.post(
        "/login", data={"email": email, "password": "nope", "csrf_token": token}
    )
    assert wrong.status_code == 401  # past the CSRF check, refused as a wrong password
    assert "wrong e-mail address or password" in wrong.text


def test_every_response_carries_the_security_headers(sqlite_client: TestClient) -> None:
    for path in ("/login", "/", "/api/v1/me", "/static/app.css", "/no-such-page"):
        headers = sqlite_client.get(path).headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


def test_pages_load_nothing_from_other_hosts_and_run_no_inline_code(
    client: TestClient, store: Store
) -> None:
    pages = [client.get("/login").text, client.get("/no-such-page").text]
    sign_in(client, add_user(store, "ada"))
    pages.append(client.get("/").text)
    for html in pages:
        page = _Page(html)
        for _tag, attrs in page.tags:
            for name in ("src", "href", "action", "formaction"):
                target = urlsplit(attrs.get(name, ""))
                assert not target.scheme and not target.netloc, attrs
            assert "style" not in attrs and not any(name.startswith("on") for name in attrs)
        assert set(page.inline_scripts) <= {"application/json"}
    for asset in ("/static/app.css", "/static/app.js"):
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text, asset


def test_api_errors_name_the_fields_and_do_not_echo_them(sqlite_client: TestClient) -> None:
    response = sqlite_client.post(
        "/api/v1/auth/login", json={"password": "s3cret-value", "extra": 1}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert {field["field"] for field in body["fields"]} == {"email", "extra"}
    assert "s3cret-value" not in response.text


def test_the_openapi_document_is_served_without_cdn_docs(sqlite_client: TestClient) -> None:
    document = sqlite_client.get("/api/v1/openapi.json").json()
    assert "/api/v1/me" in document["paths"]
    assert "/login" not in document["paths"]
    assert sqlite_client.get("/api/v1/docs").status_code == 404
    assert sqlite_client.get("/docs").status_code in (303, 404)
