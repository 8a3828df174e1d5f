"""The workspace through its JSON API, as scripts and the pages use it.

What the issue asks to see through the API: experts cannot read another project's items
or another expert's judgments, cannot skip the NDA or the qualification, never see model
names; hostile answers render inert; a repeated idempotency key stores one judgment; and
concurrent next-task calls never over-assign the last slot (against a real server).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from test_generation import serve  # noqa: F401  (an in-process OpenAI-compatible server)
from tutelage.interchange import import_file
from tutelage.records import TaskKind
from tutelage.store import Store
from tutelage.store.tables import ComparisonRow, CompletionRow, PromptRow
from tutelage.store.workspace_tables import AssignmentRow, ItemRow
from tutelage.web import ServerSettings, create_app
from tutelage.workspace.accounts import create_api_token
from tutelage.workspace.items import build_items, mark_known_answers
from workspace_fixtures import PASSWORD, World, make_world

HOSTILE = (
    "<script>alert(1)</script> <img src=x onerror=alert(1)> "
    "[click](javascript:alert(1)) ![t](https://tracker.example/p.png)"
)


def token_for(world: World, index: int) -> dict[str, str]:
    with world.store.session() as session:
        token = create_api_token(session, user_id=world.experts[index].user_id, name="t")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store), follow_redirects=False) as test_client:
        yield test_client


def test_a_task_view_is_blinded_and_hostile_answers_are_inert(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=1, overlap=2)
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(
        json.dumps({"prompt": "Hi", "chosen": HOSTILE, "rejected": "plain"}) + "\n", "utf-8"
    )
    import_file(store, path=hostile, project="cardio")
    with store.session() as session:
        build_items(
            session, project_id=world.project_id, kinds=(TaskKind.COMPARISON,), actor_id=None
        )
    headers = token_for(world, 0)
    seen_html = []
    while (
        response := client.post(f"/api/v1/projects/{world.project_id}/next", headers=headers)
    ).status_code == 200:
        view = response.json()
        body = json.dumps(view)
        assert "model" not in body and "unknown" not in body and "expert" not in body
        assert "purpose" not in body and "gold" not in body
        seen_html += [answer["html"] for answer in view["answers"]]
        done = client.post(
            f"/api/v1/assignments/{view['assignment_id']}/judgment",
            json={"kind": "comparison", "choice": "a", "active_seconds": 3},
            headers=headers,
        )
        assert done.status_code == 201, done.text
    hostile_html = next(html for html in seen_html if "alert" in html)
    # Tags arrive as visible text, never as elements; links and images never load.
    assert "<script" not in hostile_html and "<img" not in hostile_html
    assert "href" not in hostile_html and "[image: t]" in hostile_html
    assert "&lt;script&gt;" in hostile_html  # the expert sees that the model tried


def test_experts_see_only_their_projects_and_their_own_work(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=2, experts=2)
    own = token_for(world, 0)
    other = token_for(world, 1)
    listed = client.get("/api/v1/projects", headers=own).json()
    assert [p["name"] for p in listed] == ["cardio"]
    view = client.post(f"/api/v1/projects/{world.project_id}/next", headers=own).json()
    assignment = view["assignment_id"]
    assert client.get(f"/api/v1/assignments/{assignment}", headers=other).status_code == 404
    refused = client.post(
        f"/api/v1/assignments/{assignment}/judgment",
        json={"kind": "comparison", "choice": "b"},
        headers=other,
    )
    assert refused.status_code == 404
    assert client.get(f"/api/v1/projects/{world.project_id + 999}", headers=own).status_code == 404
    # a project the expert is not a member of does not exist for them
    with store.session() as session:
        from tutelage.records import Project
        from tutelage.workspace.membership import new_project

        hidden = new_project(session, actor=world.admin, project=Project(name="secret")).id
    assert client.get(f"/api/v1/projects/{hidden}", headers=own).status_code == 404
    assert client.post(f"/api/v1/projects/{hidden}/next", headers=own).status_code == 404
    # experts cannot use admin routes
    assert client.get(f"/api/v1/projects/{world.project_id}/stats", headers=own).status_code == 403
    assert client.get(f"/api/v1/projects/{world.project_id}/audit", headers=own).status_code == 403


def test_the_nda_and_the_qualification_cannot_be_skipped(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=4, sign_nda=False, qualification_pass_mark=1.0)
    headers = token_for(world, 0)
    blocked = client.post(f"/api/v1/projects/{world.project_id}/next", headers=headers)
    assert blocked.status_code == 403 and blocked.json()["error"] == "needsnda"
    assert (
        client.post(f"/api/v1/projects/{world.project_id}/nda", headers=headers).status_code == 204
    )
    no_items = client.post(f"/api/v1/projects/{world.project_id}/next", headers=headers)
    assert no_items.status_code == 403 and no_items.json()["error"] == "needsqualification"
    with store.session() as session:
        mark_known_answers(
            session, project_id=world.project_id, purpose="qualification", count=1, actor_id=None
        )
    view = client.post(f"/api/v1/projects/{world.project_id}/next", headers=headers).json()
    with store.session() as session:
        assignment = session.get(AssignmentRow, view["assignment_id"])
        assert assignment is not None
        item = session.get(ItemRow, assignment.item_id)
        assert item is not None and item.purpose == "qualification"
        wrong = "b" if assignment.shown_order[0] == item.gold_answer["winner"] else "a"
    client.post(
        f"/api/v1/assignments/{view['assignment_id']}/judgment",
        json={"kind": "comparison", "choice": wrong},
        headers=headers,
    )
    failed = client.post(f"/api/v1/projects/{world.project_id}/next", headers=headers)
    assert failed.status_code == 403 and "pass mark" in failed.json()["message"]


def test_a_repeated_idempotency_key_stores_one_judgment(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=2)
    headers = token_for(world, 0)
    view = client.post(f"/api/v1/projects/{world.project_id}/next", headers=headers).json()
    url = f"/api/v1/assignments/{view['assignment_id']}/judgment"
    body = {"kind": "comparison", "choice": "a", "strength": "clear", "active_seconds": 12.5}
    first = client.post(url, json=body, headers={**headers, "Idempotency-Key": "retry-1"})
    second = client.post(url, json=body, headers={**headers, "Idempotency-Key": "retry-1"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    with store.session() as session:
        stored = session.scalar(
            select(func.count(ComparisonRow.id)).where(ComparisonRow.expert_id.is_not(None))
        )
    assert stored == 1


def test_bad_submissions_name_the_problem(store: Store, tmp_path: Path, client: TestClient) -> None:
    world = make_world(store, tmp_path, pairs=2)
    headers = token_for(world, 0)
    view = client.post(f"/api/v1/projects/{world.project_id}/next", headers=headers).json()
    url = f"/api/v1/assignments/{view['assignment_id']}/judgment"
    wrong_kind = client.post(
        url, json={"kind": "rating", "scores": {"accuracy": 3}}, headers=headers
    )
    assert wrong_kind.status_code == 400 and "asks for a comparison" in wrong_kind.json()["message"]
    bad_score = client.post(
        url,
        json={"kind": "comparison", "choice": "a", "criteria": {"accuracy": 9}},
        headers=headers,
    )
    assert bad_score.status_code == 400 and "accuracy" in bad_score.json()["message"]
    bad_choice = client.post(url, json={"kind": "comparison", "choice": "c"}, headers=headers)
    assert bad_choice.status_code == 422
    with store.session() as session:
        assert session.scalar(select(func.count(ComparisonRow.id)).where(
            ComparisonRow.expert_id.is_not(None))) == 0  # fmt: skip


def test_concurrent_next_task_calls_never_over_assign_the_last_slot(
    store: Store, tmp_path: Path, live_server: str
) -> None:
    world = make_world(store, tmp_path, pairs=3, experts=12, overlap=2)
    tokens = [token_for(world, i) for i in range(12)]
    barrier = threading.Barrier(12)

    def work(headers: dict[str, str]) -> int:
        judged = 0
        with httpx.Client(base_url=live_server, headers=headers, timeout=30) as http:
            barrier.wait()
            while (
                lease := http.post(f"/api/v1/projects/{world.project_id}/next")
            ).status_code == 200:
                done = http.post(
                    f"/api/v1/assignments/{lease.json()['assignment_id']}/judgment",
                    json={"kind": "comparison", "choice": "a", "active_seconds": 1},
                )
                assert done.status_code == 201, done.text
                judged += 1
            assert lease.status_code == 204, lease.text
        return judged

    with ThreadPoolExecutor(max_workers=12) as pool:
        acknowledged = sum(pool.map(work, tokens))

    assert acknowledged == 3 * 2  # every slot filled, none twice
    with store.session() as session:
        judged = dict(session.execute(select(ItemRow.id, ItemRow.judged)).all())
        stored = session.scalar(
            select(func.count(ComparisonRow.id)).where(ComparisonRow.expert_id.is_not(None))
        )
    assert set(judged.values()) == {2}
    assert stored == acknowledged


def test_concurrent_work_shares_commits_and_a_failure_spoils_no_one_elses(
    store: Store, tmp_path: Path
) -> None:
    """SQLite's group commit: experts working at once share transactions, every
    acknowledged judgment is stored, and a failing request (here, a submit to someone
    else's assignment) gets its own error while the others in its group are stored."""
    if not store.is_local:
        pytest.skip("group commit is for SQLite; PostgreSQL runs transactions side by side")
    world = make_world(store, tmp_path, pairs=40, experts=8, overlap=2)
    tokens = [token_for(world, i) for i in range(8)]
    commits = []
    event.listen(store.engine, "commit", lambda _connection: commits.append(1))

    async def expert(
        http: httpx.AsyncClient, me: int, cycles: int, leases: list[tuple[int, int]]
    ) -> list[int]:
        statuses: list[int] = []
        for cycle in range(cycles):
            lease = await http.post(f"/api/v1/projects/{world.project_id}/next")
            assert lease.status_code == 200, lease.text
            assignment = lease.json()["assignment_id"]
            leases.append((me, assignment))
            others = [leased for who, leased in leases if who != me]
            # now and then, someone else's assignment: "not found" for this expert alone
            target = others[-1] if others and cycle % 2 == 1 else assignment
            done = await http.post(
                f"/api/v1/assignments/{target}/judgment",
                json={"kind": "comparison", "choice": "a", "active_seconds": 1},
            )
            statuses.append(done.status_code)
            if done.status_code != 201:  # then the expert submits their own
                again = await http.post(
                    f"/api/v1/assignments/{assignment}/judgment",
                    json={"kind": "comparison", "choice": "b", "active_seconds": 1},
                )
                assert again.status_code == 201, again.text
                statuses.append(again.status_code)
        return statuses

    async def everyone() -> list[list[int]]:
        app = create_app(store)
        transport = httpx.ASGITransport(app=app)
        clients = [
            httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers)
            for headers in tokens
        ]
        leases: list[tuple[int, int]] = []
        try:
            return await asyncio.gather(
                *(expert(http, me, 4, leases) for me, http in enumerate(clients))
            )
        finally:
            for http in clients:
                await http.aclose()

    requests_before = len(commits)
    statuses = [status for one in asyncio.run(everyone()) for status in one]
    acknowledged = statuses.count(201)
    assert acknowledged == 8 * 4
    refused = [status for status in statuses if status != 201]
    assert refused and set(refused) == {404}
    requests = 8 * 4 * 2 + len(refused)
    # without grouping, each of the 64 requests that succeed commits on its own
    assert len(commits) - requests_before < requests // 2
    with store.session() as session:
        stored = session.scalar(
            select(func.count(ComparisonRow.id)).where(ComparisonRow.expert_id.is_not(None))
        )
        over = session.scalar(select(func.count(ItemRow.id)).where(ItemRow.judged > 2))
    assert stored == acknowledged and over == 0


def test_work_waits_for_a_writer_held_elsewhere(store: Store, tmp_path: Path) -> None:
    """While another transaction holds SQLite's writer (an import, another process), the
    hot paths wait for it in a worker thread, not in the event loop, and then go on."""
    if not store.is_local:
        pytest.skip("PostgreSQL has no single writer")
    world = make_world(store, tmp_path, pairs=2)
    headers = token_for(world, 0)
    held, ticked, released = threading.Event(), threading.Event(), threading.Event()
    loop_ran: list[bool] = []

    def hold_the_writer() -> None:
        # Held until the event loop has shown it runs while the lease waits (or, if it
        # never does, for long enough that the test fails on a machine however slow).
        with store.session():
            held.set()
            loop_ran.append(ticked.wait(timeout=300))
            released.set()

    async def ask() -> tuple[int, bool]:
        transport = httpx.ASGITransport(app=create_app(store))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as http:
            lease = asyncio.ensure_future(http.post(f"/api/v1/projects/{world.project_id}/next"))
            for _ in range(10):  # the event loop keeps running meanwhile
                await asyncio.sleep(0.01)
            ticked.set()
            answer = await lease
            return answer.status_code, released.is_set()

    holder = threading.Thread(target=hold_the_writer)
    holder.start()
    held.wait()
    status, after_release = asyncio.run(ask())
    holder.join()
    assert loop_ran == [True], "the event loop stood still while the lease waited"
    assert status == 200 and after_release


def test_password_login_works_for_pages_and_api(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    make_world(store, tmp_path, pairs=1)
    signed_in = client.post(
        "/api/v1/auth/login", json={"email": "expert0@example.org", "password": PASSWORD}
    )
    assert signed_in.status_code == 200
    assert client.get("/api/v1/me").json()["handle"] == "expert0"


def test_a_red_team_prompt_enters_the_project_with_generated_answers(
    store: Store,
    tmp_path: Path,
    serve: Any,  # noqa: F811
) -> None:
    server = serve(numbered=True)  # an OpenAI-compatible server, in-process
    world = make_world(
        store, tmp_path, pairs=1, kinds=(TaskKind.REDTEAM, TaskKind.COMPARISON), overlap=1
    )
    with store.session() as session:
        build_items(
            session,
            project_id=world.project_id,
            kinds=(TaskKind.REDTEAM,),
            actor_id=None,
            redteam_slots=1,
        )
    settings = ServerSettings(generation_model=f"{server.url}/v1#echo-1")
    headers = token_for(world, 0)
    with TestClient(create_app(store, settings)) as client:
        kinds = []
        while (
            lease := client.post(f"/api/v1/projects/{world.project_id}/next", headers=headers)
        ).status_code == 200:
            view = lease.json()
            kinds.append(view["kind"])
            body: dict[str, Any] = (
                {"kind": "redteam", "prompt": "Dose of drug X for a 3-year-old?"}
                if view["kind"] == "redteam"
                else {"kind": "comparison", "choice": "a"}
            )
            url = f"/api/v1/assignments/{view['assignment_id']}/judgment"
            assert client.post(url, json=body, headers=headers).status_code == 201
    assert "redteam" in kinds
    # the new prompt's answers were generated, and a comparison item built for them
    assert kinds.count("comparison") == 2
    with store.session() as session:
        prompt = session.scalars(select(PromptRow).where(PromptRow.author_id.is_not(None))).one()
        assert prompt.messages[0]["content"] == "Dose of drug X for a 3-year-old?"
        answers = session.scalars(
            select(CompletionRow.text).where(CompletionRow.prompt_id == prompt.id)
        ).all()
    assert sorted(answers) == [
        "?dlo-raey-3 a rof X gurd fo esoD #0",
        "?dlo-raey-3 a rof X gurd fo esoD #1",
    ]


def test_a_submit_can_bring_the_next_item_in_the_same_round_trip(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=2, overlap=1)
    headers = token_for(world, 0)
    view = client.post(f"/api/v1/projects/{world.project_id}/next", headers=headers).json()
    body = {"kind": "comparison", "choice": "a"}
    first = client.post(
        f"/api/v1/assignments/{view['assignment_id']}/judgment?next=true",
        json=body,
        headers=headers,
    ).json()
    following = first["next"]
    assert following["assignment_id"] != view["assignment_id"] and following["kind"] == "comparison"
    last = client.post(
        f"/api/v1/assignments/{following['assignment_id']}/judgment?next=true",
        json=body,
        headers=headers,
    ).json()
    assert last["next"] is None  # both items judged: nothing left


def test_a_malformed_upload_names_its_line_and_stores_nothing(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=1)
    with store.session() as session:
        headers = {
            "Authorization": "Bearer " + create_api_token(session, user_id=world.admin.user_id)
        }
        before = session.scalar(select(func.count(ComparisonRow.id)))
    bad = b'{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt":\n'
    refused = client.post(
        f"/api/v1/projects/{world.project_id}/imports",
        files={"file": ("bad.jsonl", bad)},
        headers=headers,
    )
    assert refused.status_code == 400
    assert refused.json()["message"] == "nothing was imported: bad.jsonl:2: malformed JSON"
    with store.session() as session:
        assert session.scalar(select(func.count(ComparisonRow.id))) == before
