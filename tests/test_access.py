"""Losing access to a project ends access to its items at once, through the real app on
SQLite and PostgreSQL: every route that shows an item's texts or changes an assignment
is refused, and nothing of the item is in the answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tutelage.store import Store
from tutelage.store.projects import project_record
from tutelage.store.tables import ProjectRow
from tutelage.store.workspace_tables import AssignmentRow, AuditRow
from tutelage.web import create_app
from tutelage.workspace.accounts import create_api_token
from tutelage.workspace.membership import update_project
from workspace_fixtures import PASSWORD, World, make_world

TEXTS = ("Question 0?", "Good answer 0.", "Bad answer 0.")


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store), follow_redirects=False) as test_client:
        yield test_client


def bearer(world: World, user_id: int) -> dict[str, str]:
    with world.store.session() as session:
        return {"Authorization": f"Bearer {create_api_token(session, user_id=user_id, name='t')}"}


def remove_from_project(client: TestClient, world: World, admin: dict[str, str]) -> None:
    answer = client.delete(
        f"/api/v1/projects/{world.project_id}/members/{world.experts[0].handle}", headers=admin
    )
    assert answer.status_code == 204, answer.text


def change_the_nda(client: TestClient, world: World, admin: dict[str, str]) -> None:
    with world.store.session() as session:
        row = session.get(ProjectRow, world.project_id)
        assert row is not None
        changed = project_record(row).model_copy(update={"nda_text": "Keep even more secret."})
        update_project(session, actor=world.admin, project_id=world.project_id, project=changed)


def deactivate_the_account(client: TestClient, world: World, admin: dict[str, str]) -> None:
    answer = client.post(
        f"/api/v1/users/{world.experts[0].handle}/deactivate",
        headers=admin,
        json={"reason": "left the programme"},
    )
    assert answer.status_code == 200 and answer.json() == {"leases_released": 1}, answer.text


def revoke_the_token(client: TestClient, world: World, admin: dict[str, str]) -> None:
    tokens = client.get(f"/api/v1/users/{world.experts[0].handle}/tokens", headers=admin)
    assert tokens.status_code == 200, tokens.text
    for token in tokens.json():
        assert client.delete(f"/api/v1/tokens/{token['id']}", headers=admin).status_code == 204


Way = Callable[[TestClient, World, dict[str, str]], None]
# Each way, and whether it ends the expert's API token and their browser session.
WAYS: dict[str, tuple[Way, bool, bool]] = {
    "removed from the project": (remove_from_project, True, True),
    "NDA changed": (change_the_nda, True, True),
    "account deactivated": (deactivate_the_account, True, True),
    "token revoked": (revoke_the_token, True, False),
    "session ended": (lambda client, world, admin: None, False, True),  # logs out below
}


@pytest.mark.parametrize("way", list(WAYS))
def test_losing_access_ends_every_read_and_change_of_a_held_item(
    store: Store, tmp_path: Path, client: TestClient, way: str
) -> None:
    world = make_world(store, tmp_path, pairs=1, experts=2, overlap=1)
    expert = bearer(world, world.experts[0].user_id)
    admin = bearer(world, world.admin.user_id)
    leased = client.post(f"/api/v1/projects/{world.project_id}/next", headers=expert)
    assert leased.status_code == 200, leased.text
    held = leased.json()["assignment_id"]
    assert client.get(f"/api/v1/assignments/{held}", headers=expert).status_code == 200
    page = TestClient(client.app, follow_redirects=False)
    signed_in = page.post(
        "/api/v1/auth/login", json={"email": "expert0@example.org", "password": PASSWORD}
    )
    assert signed_in.status_code == 200
    assert TEXTS[0] in page.get(f"/projects/{world.project_id}/work").text

    csrf = signed_in.json()["csrf_token"]
    lose, token_lost, session_lost = WAYS[way]
    lose(client, world, admin)
    if way == "session ended":
        assert page.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204

    routes: dict[str, Callable[[], Any]] = {
        "read": lambda: client.get(f"/api/v1/assignments/{held}", headers=expert),
        "skip": lambda: client.post(
            f"/api/v1/assignments/{held}/skip", headers=expert, json={"reason": "done with it"}
        ),
        "submit": lambda: client.post(
            f"/api/v1/assignments/{held}/judgment",
            headers={**expert, "Idempotency-Key": "k-1"},
            json={"kind": "comparison", "choice": "a"},
        ),
        "next": lambda: client.post(f"/api/v1/projects/{world.project_id}/next", headers=expert),
        "work page": lambda: page.get(f"/projects/{world.project_id}/work"),
        "start": lambda: page.post(f"/projects/{world.project_id}/work", data={"csrf_token": csrf}),
    }
    pages = ("work page", "start")
    if not token_lost:  # the browser session still works, and only it is tried
        routes = {route: routes[route] for route in pages}
    if not session_lost:
        for route in pages:
            del routes[route]
    for route, call in routes.items():
        answer = call()
        refused = answer.status_code in (401, 403, 404) or (
            route in pages
            and answer.status_code == 303  # to the sign-in or the NDA page
            and "/work" not in answer.headers["location"]
        )
        assert refused, f"{way}: {route} answered {answer.status_code}"
        for text in TEXTS:
            assert text not in answer.text, f"{way}: {route} shows {text!r}"
    with store.session() as session:
        assignment = session.get(AssignmentRow, held)
        assert assignment is not None
        status = assignment.status
        removals = session.scalars(select(AuditRow).where(AuditRow.action == "member.remove"))
        released = [row.details["leases_released"] for row in removals]
        logged = set(session.scalars(select(AuditRow.action)))
    expected = {"account deactivated": "user.deactivate", "token revoked": "token.revoke"}
    if way in expected:
        assert expected[way] in logged, f"{way} is not in the audit log"
    if way in ("removed from the project", "account deactivated"):
        # What they held went back to the queue at once, and the log says so.
        assert status == "expired"
        assert released == ([1] if way == "removed from the project" else [])
        other = bearer(world, world.experts[1].user_id)
        again = client.post(f"/api/v1/projects/{world.project_id}/next", headers=other)
        assert again.status_code == 200 and TEXTS[0] in again.text
    else:  # still theirs: frozen until they accept the new NDA, sign in or make a token
        assert status == "leased"
    if way == "NDA changed":
        accepted = client.post(f"/api/v1/projects/{world.project_id}/nda", headers=expert)
        assert accepted.status_code == 204
        assert client.get(f"/api/v1/assignments/{held}", headers=expert).status_code == 200


@pytest.mark.parametrize("bad", ["with\x00nul", "bell\x07", "bidi\u202eeman"])
def test_names_with_control_characters_are_refused_clearly(
    store: Store, tmp_path: Path, client: TestClient, bad: str
) -> None:
    world = make_world(store, tmp_path, pairs=1)
    admin = bearer(world, world.admin.user_id)
    # a NUL no store can hold is refused before the route, naming the field; other
    # control characters by the name's own rule
    said = "body.name holds a NUL" if "\x00" in bad else "control characters"
    project = client.post("/api/v1/projects", headers=admin, json={"name": bad})
    assert project.status_code == 422, project.text
    assert said in project.json()["message"]
    person = client.post(
        "/api/v1/users",
        headers=admin,
        json={"email": "new@example.org", "handle": bad, "password": "a long, fine password"},
    )
    assert person.status_code == 422, person.text
    assert said.replace("name", "handle") in person.json()["message"]
    with store.session() as session:  # (PostgreSQL cannot even compare with a NUL)
        assert session.scalars(select(ProjectRow.name)).all() == ["cardio"]
