"""The dataset pages through the real app on a real store: the list, a version's manifest,
history and diff, running its checks, its data card, and that only admins see them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quality_fixtures import item_ids, judge
from tutelage.datasets import events, open_version
from tutelage.datasets.gate import require_checked
from tutelage.datasets.snapshot import SnapshotSettings, snapshot
from tutelage.quality.persist import analyse_project
from tutelage.store import Store
from tutelage.web import ServerSettings, create_app
from workspace_fixtures import PASSWORD, World, make_world

HOSTILE = "<script>alert('reason')</script>"


@pytest.fixture
def world(store: Store, tmp_path: Path) -> World:
    """Project 'cardio': six pairs judged by three experts (one tie), versions v1 and v2
    (v2 split with another seed, so its parent v1 differs in splits)."""
    made = make_world(store, tmp_path, pairs=6, experts=3)
    truth = {item: "tie" if n == 0 else "a" for n, item in enumerate(item_ids(made))}
    for expert in range(3):
        judge(made, expert, truth)
    analyse_project(store, project="cardio", bootstrap=0)
    snapshot(store, project="cardio", name="v1", settings=SnapshotSettings(), actor="test")
    snapshot(
        store,
        project="cardio",
        name="v2",
        settings=SnapshotSettings(seed=3, split=(0.5, 0.25, 0.25)),
        actor="test",
    )
    return made


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, ServerSettings()), follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient, email: str) -> str:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_list_version_page_check_and_card(world: World, client: TestClient) -> None:
    store = world.store
    with store.session() as session:
        v1 = open_version(session, ref="v1")
        require_checked(session, version=v1, override=HOSTILE, actor="admin")
    token = sign_in(client, "admin@example.org")

    project = client.get(f"/admin/projects/{world.project_id}")
    assert f'href="/admin/projects/{world.project_id}/datasets"' in project.text

    listing = client.get(f"/admin/projects/{world.project_id}/datasets")
    assert listing.status_code == 200
    assert HOSTILE not in listing.text and "&lt;script&gt;" in listing.text
    rows = text_of(listing.text)
    assert f"v1 {v1.hash[:12]} preference 5" in rows and "v2" in rows
    assert 'href="/admin/datasets/v2"' in listing.text

    page = client.get("/admin/datasets/v1")
    assert page.status_code == 200
    shown = text_of(page.text)
    assert "By label a 5" in shown
    assert "override" in shown and HOSTILE in shown and HOSTILE not in page.text
    assert "latest check: never" in shown

    diff = text_of(client.get("/admin/datasets/v2").text)
    assert "Changes since v1" in diff and re.search(r"0 added, 0 removed, \d+ changed", diff)

    refused = client.post("/admin/datasets/v1/check", data={})
    assert refused.status_code == 403
    checked = client.post("/admin/datasets/v1/check", data={"csrf_token": token})
    assert checked.status_code == 303 and checked.headers["location"].startswith(
        "/admin/datasets/v1?done="
    )
    with store.session() as session:
        history = events(session, version=open_version(session, ref="v1"))
    assert [e.kind for e in history] == ["override", "check"] and history[-1].passed
    after = text_of(client.get(checked.headers["location"]).text)
    assert "Checked: passed." in after and "latest check: passed" in after
    assert "check passed web:admin" in after

    card = client.get("/admin/datasets/v1/card")
    assert card.status_code == 200 and card.headers["content-type"].startswith("text/html")
    assert "Data card: v1" in card.text and '<img alt="' in card.text
    assert 'src="data:image/png;base64,' in card.text and "<style>" not in card.text
    assert "img-src 'self' data:" in card.headers["content-security-policy"]
    assert client.get("/admin/dataset-card.css").headers["content-type"].startswith("text/css")

    assert client.get("/admin/datasets/nope").status_code == 404


def test_an_expert_sees_none_of_it(world: World, client: TestClient) -> None:
    token = sign_in(client, "expert0@example.org")
    for path in (
        f"/admin/projects/{world.project_id}/datasets",
        "/admin/datasets/v1",
        "/admin/datasets/v1/card",
        "/admin/dataset-card.css",
    ):
        response = client.get(path)
        assert response.status_code in (403, 404), path
        assert "By label" not in response.text and "Data card" not in response.text
    posted = client.post("/admin/datasets/v1/check", data={"csrf_token": token})
    assert posted.status_code in (403, 404)
    with world.store.session() as session:
        assert events(session, version=open_version(session, ref="v1")) == []
