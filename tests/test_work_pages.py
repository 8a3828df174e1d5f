"""The expert's pages through the real app on a real store: NDA first, own projects only,
blinded and inert work pages, a clear page for a failed qualification, CSRF on forms."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tutelage.demo import DEMO_PROJECT, set_up_demo
from tutelage.demo.workspace import DEMO_LOGINS, seed_workspace
from tutelage.interchange import import_file
from tutelage.records import Completion, Project, TaskKind
from tutelage.store import Store
from tutelage.store.projects import get_project
from tutelage.store.tables import PromptRow
from tutelage.store.workspace_tables import AssignmentRow, ItemRow, NdaAcceptanceRow
from tutelage.store.writer import RecordWriter
from tutelage.web import create_app
from tutelage.workspace.items import build_items, mark_known_answers
from tutelage.workspace.membership import new_project
from workspace_fixtures import PASSWORD, make_world

GENERATED_MODEL = "smollm2-135m-instruct"
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(1)>[x](javascript:alert(1))"


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store), follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in; return the session's CSRF token."""
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


class _Page(HTMLParser):
    """A page's elements with their attributes, its inline scripts, and its page data."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.inline_scripts: list[str] = []
        self.data: Any = None
        self._script: dict[str, str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script = attributes

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is None or "src" in self._script:
            return
        if self._script.get("id") == "page-data":
            self.data = json.loads(data)
        else:
            self.inline_scripts.append(data)


def take_next(client: TestClient, project_id: int, csrf: str) -> Any:
    """Press Start: post for the next item and follow the redirect to the item's page."""
    answer = client.post(f"/projects/{project_id}/work", data={"csrf_token": csrf})
    if answer.status_code == 303 and answer.headers["location"].endswith("/work"):
        return client.get(answer.headers["location"])
    return answer


def all_done(html: str) -> bool:
    """Whether a work page says that nothing is left (rather than showing an item)."""
    return "<h1>All done</h1>" in html and 'id="task-root"' not in html


def expert_email(index: int = 0) -> str:
    """The e-mail address of `make_world`'s expert number `index`."""
    return f"expert{index}@example.org"


def test_the_work_page_needs_the_current_nda_accepted(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=2, sign_nda=False)
    csrf = sign_in(client, expert_email())
    project = f"/projects/{world.project_id}"

    assert "Accept the NDA" in client.get("/").text
    work = client.get(f"{project}/work")
    assert work.status_code == 303 and work.headers["location"] == project
    nda = client.get(project)
    assert nda.status_code == 200
    assert "Keep it confidential." in nda.text and "I accept" in nda.text
    assert 'id="task-root"' not in nda.text

    accepted = client.post(f"{project}/nda", data={"csrf_token": csrf})
    assert accepted.status_code == 303 and accepted.headers["location"] == project
    with store.session() as session:
        assert session.scalar(select(func.count(NdaAcceptanceRow.id))) == 1
    start = client.get(project)
    assert "Start" in start.text and "I accept" not in start.text
    page = _Page(take_next(client, world.project_id, csrf).text)
    assert page.data["task"]["kind"] == "comparison"
    assert any(
        tag == "article" and attrs.get("data-assignment") == str(page.data["task"]["assignment_id"])
        for tag, attrs in page.tags
    )


def test_loading_the_work_page_leases_nothing_until_start_posts(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=2)
    csrf = sign_in(client, expert_email())
    project = f"/projects/{world.project_id}"

    def leases() -> int:
        with store.session() as session:
            return session.scalar(select(func.count(AssignmentRow.id))) or 0

    for _ in range(3):  # a prefetching browser, a link checker, a reload
        loaded = client.get(f"{project}/work")
        assert loaded.status_code == 303 and loaded.headers["location"] == project
    assert leases() == 0
    start = _Page(client.get(project).text)
    assert ("form", {"method": "post", "action": f"{project}/work", "class": "button-row"}) in (
        start.tags
    )
    assert client.post(f"{project}/work", data={}).status_code == 403  # no CSRF token
    assert leases() == 0

    held = _Page(take_next(client, world.project_id, csrf).text).data["task"]
    assert leases() == 1
    again = _Page(client.get(f"{project}/work").text).data["task"]  # a reload shows the same
    assert again["assignment_id"] == held["assignment_id"] and leases() == 1


def test_a_form_post_without_the_csrf_token_is_refused(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=1, sign_nda=False)
    sign_in(client, expert_email())
    for form in ({}, {"csrf_token": "forged"}):
        refused = client.post(f"/projects/{world.project_id}/nda", data=form)
        assert refused.status_code == 403
    with store.session() as session:
        assert session.scalar(select(func.count(NdaAcceptanceRow.id))) == 0


def test_an_expert_sees_only_their_own_projects(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=1)
    with store.session() as session:
        other = new_project(session, actor=world.admin, project=Project(name="oncology-secret")).id
    csrf = sign_in(client, expert_email())
    home = client.get("/").text
    assert "cardio" in home and "oncology-secret" not in home
    assert 'href="/admin"' not in home
    for path in ("", "/work", "/me"):
        assert client.get(f"/projects/{other}{path}").status_code == 404
    assert client.post(f"/projects/{other}/nda", data={"csrf_token": csrf}).status_code == 404

    admin = TestClient(client.app, follow_redirects=False)
    sign_in(admin, "admin@example.org")
    admin_home = admin.get("/").text
    assert "oncology-secret" in admin_home and 'href="/admin"' in admin_home


def test_the_work_page_shows_when_the_qualification_failed_and_when_all_is_done(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=3, experts=2, qualification_pass_mark=1.0, overlap=1)
    with store.session() as session:
        mark_known_answers(
            session, project_id=world.project_id, purpose="qualification", count=2, actor_id=None
        )
    project = f"/projects/{world.project_id}"
    for index, right in ((0, False), (1, True)):
        person = TestClient(client.app, follow_redirects=False)
        csrf = sign_in(person, expert_email(index))
        while (page := take_next(person, world.project_id, csrf)).status_code == 200:
            if all_done(page.text):
                break
            task = _Page(page.text).data["task"]
            with store.session() as session:
                assignment = session.get(AssignmentRow, task["assignment_id"])
                assert assignment is not None
                item = session.get(ItemRow, assignment.item_id)
                assert item is not None
                winner = (item.gold_answer or {}).get("winner", assignment.shown_order[0])
                picked = "a" if (assignment.shown_order[0] == winner) == right else "b"
            stored = person.post(
                f"/api/v1/assignments/{task['assignment_id']}/judgment",
                json={"kind": "comparison", "choice": picked, "active_seconds": 2},
                headers={"X-CSRF-Token": csrf},
            )
            assert stored.status_code == 201, stored.text
        if right:
            assert page.status_code == 200 and all_done(page.text)
        else:
            assert page.status_code == 403
            assert "below the pass mark" in page.text
            assert "Qualification not passed" in person.get("/").text
            assert "did not reach the qualification" in person.get(project).text


def add_generated_answers(store: Store) -> None:
    """Give the demo's answerless sample prompts two answers each, stored as generation
    stores them, with the bundled model's id."""
    with store.session() as session:
        project_id = get_project(session, name=DEMO_PROJECT.name).id
        writer = RecordWriter(session, project_id=project_id)
        prompts = session.execute(
            select(PromptRow.id, PromptRow.messages).where(PromptRow.project_id == project_id)
        ).all()
        for prompt_id, messages in prompts:
            for variant in ("briefly", "in detail"):
                text = f"Generated answer ({variant}) to: {messages[-1]['content']}"
                writer.completion_id(
                    prompt_id, Completion(text=text, model_id=GENERATED_MODEL, model_version="1")
                )
        writer.flush()


def submission_for(task: dict[str, Any], store: Store) -> dict[str, Any]:
    """A valid judgment of the task's kind (right, for items with a known answer)."""
    letters = [answer["letter"] for answer in task["answers"]]
    kind = task["kind"]
    if kind == "comparison":
        with store.session() as session:
            assignment = session.get(AssignmentRow, task["assignment_id"])
            assert assignment is not None
            item = session.get(ItemRow, assignment.item_id)
            assert item is not None
            winner = (item.gold_answer or {}).get("winner")
            choice = "b" if winner is not None and assignment.shown_order[1] == winner else "a"
        return {"kind": kind, "choice": choice}
    if kind == "ranking":
        return {"kind": kind, "order": letters}
    if kind == "rating":
        return {"kind": kind, "scores": {c["name"]: 3 for c in task["rubric"]}}
    if kind == "rewrite":
        return {"kind": kind, "base": "A", "text": "A better answer."}
    if kind == "flag":
        return {"kind": kind, "flags": []}
    return {"kind": kind, "prompt": f"A new hard question ({task['assignment_id']})?"}


def test_work_pages_never_show_model_ids(store: Store, client: TestClient) -> None:
    set_up_demo(store)
    add_generated_answers(store)
    seed_workspace(store)
    expert = next(login for login in DEMO_LOGINS if login.role == "expert")
    csrf = sign_in(client, expert.email, expert.password)
    with store.session() as session:
        project_id = get_project(session, name=DEMO_PROJECT.name).id
    assert client.post(f"/projects/{project_id}/nda", data={"csrf_token": csrf}).status_code == 303

    kinds_seen: set[str] = set()
    generated_seen = False
    while kinds_seen != {kind.value for kind in TaskKind}:
        page = take_next(client, project_id, csrf)
        assert page.status_code == 200 and not all_done(page.text)
        assert "unknown" not in page.text and GENERATED_MODEL not in page.text
        assert "smollm" not in page.text.lower()
        task = _Page(page.text).data["task"]
        kinds_seen.add(task["kind"])
        generated_seen = generated_seen or "Generated answer" in page.text
        stored = client.post(
            f"/api/v1/assignments/{task['assignment_id']}/judgment",
            json=submission_for(task, store),
            headers={"X-CSRF-Token": csrf},
        )
        assert stored.status_code == 201, stored.text
    assert generated_seen


def test_a_hostile_answer_renders_inert_on_the_work_page(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=1, kinds=tuple(TaskKind))
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(
        json.dumps({"prompt": "Hi", "chosen": HOSTILE, "rejected": "A plain answer."}) + "\n",
        encoding="utf-8",
    )
    import_file(store, path=hostile, project="cardio")
    with store.session() as session:
        build_items(session, project_id=world.project_id, kinds=tuple(TaskKind), actor_id=None)
    csrf = sign_in(client, expert_email())
    kinds_seen = set()
    hostile_pages = 0
    while (page := take_next(client, world.project_id, csrf)).status_code == 200:
        if all_done(page.text):
            break
        html = page.text
        parsed = _Page(html)
        task = parsed.data["task"]
        kinds_seen.add(task["kind"])
        assert "<script>alert" not in html
        assert parsed.inline_scripts == []  # the JSON page data is the only inline script
        for tag, attributes in parsed.tags:
            assert tag not in ("img", "iframe", "object", "embed"), (tag, attributes)
            assert not any(name.startswith("on") for name in attributes), (tag, attributes)
            for name in ("href", "src", "action", "formaction"):
                assert not attributes.get(name, "").strip().lower().startswith("javascript:")
        if any(answer["text"] == HOSTILE for answer in task["answers"]):
            # The expert sees what the model tried, as text.
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
            hostile_pages += 1
        stored = client.post(
            f"/api/v1/assignments/{task['assignment_id']}/judgment",
            json=submission_for(task, store),
            headers={"X-CSRF-Token": csrf},
        )
        assert stored.status_code == 201, stored.text
    assert kinds_seen == {"comparison", "rating", "rewrite", "flag"}
    assert hostile_pages == 4  # one of each kind
