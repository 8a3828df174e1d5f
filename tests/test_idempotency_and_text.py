"""An Idempotency-Key means what it says, and text no store can hold is refused where it
enters, naming where: through the real app on SQLite and PostgreSQL, concurrently
against a real server, and through the importer, which also knows records it stored
before whatever the file's bytes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tutelage.formats import FormatError
from tutelage.interchange import import_file
from tutelage.interchange.importing import ALREADY_STORED
from tutelage.store import Store, StoreError
from tutelage.store.tables import ComparisonRow, ImportRow, ProjectRow
from tutelage.store.workspace_tables import IdempotencyRow
from tutelage.web import create_app
from tutelage.workspace.accounts import create_api_token
from workspace_fixtures import World, make_world

COMPARISON = {"kind": "comparison", "choice": "a", "strength": "clear", "active_seconds": 4}


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store), follow_redirects=False) as test_client:
        yield test_client


def bearer(world: World, index: int = 0) -> dict[str, str]:
    with world.store.session() as session:
        token = create_api_token(session, user_id=world.experts[index].user_id, name="t")
    return {"Authorization": f"Bearer {token}"}


def expert_judgments(store: Store) -> list[str]:
    with store.session() as session:
        return list(
            session.scalars(
                select(ComparisonRow.outcome).where(ComparisonRow.expert_id.is_not(None))
            )
        )


def lease(client: Any, world: World, headers: dict[str, str]) -> str:
    view = client.post(f"/api/v1/projects/{world.project_id}/next", headers=headers)
    assert view.status_code == 200, view.text
    return f"/api/v1/assignments/{view.json()['assignment_id']}/judgment"


def test_a_key_sent_again_with_another_judgment_is_refused_and_stores_nothing(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=2)
    headers = bearer(world)
    url = lease(client, world, headers)
    keyed = {**headers, "Idempotency-Key": "judgment-1"}
    first = client.post(url, json=COMPARISON, headers=keyed)
    assert first.status_code == 201, first.text
    # the page retries with the active time it has measured since: the same judgment
    retried = client.post(url, json={**COMPARISON, "active_seconds": 9}, headers=keyed)
    assert retried.status_code == 201 and retried.json() == first.json()
    changed = client.post(url, json={**COMPARISON, "choice": "b"}, headers=keyed)
    assert changed.status_code == 409 and "another judgment" in changed.json()["message"]
    assert expert_judgments(store) == ["a"]
    # and a key used for one item cannot be used for the next
    following = lease(client, world, headers)
    reused = client.post(following, json=COMPARISON, headers=keyed)
    assert reused.status_code == 409 and expert_judgments(store) == ["a"]


@pytest.mark.parametrize("key", ["", "x" * 101, "has space", "naïve"])
def test_an_empty_oversized_or_unprintable_key_is_a_422(
    store: Store, tmp_path: Path, client: TestClient, key: str
) -> None:
    world = make_world(store, tmp_path, pairs=1)
    headers = bearer(world)
    url = lease(client, world, headers)
    sent: dict[str, str | bytes] = {**headers, "Idempotency-Key": key.encode()}
    refused = client.post(url, json=COMPARISON, headers=sent)  # type: ignore[arg-type]
    assert refused.status_code == 422, refused.text
    assert expert_judgments(store) == []
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyRow)) == 0


def test_the_same_keyed_judgment_sent_at_once_gets_one_receipt_everywhere(
    store: Store, tmp_path: Path, live_server: str
) -> None:
    world = make_world(store, tmp_path, pairs=1)
    headers = bearer(world)
    with httpx.Client(base_url=live_server, headers=headers, timeout=120) as http:
        url = lease(http, world, headers)
    senders = 24
    barrier = threading.Barrier(senders)

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server, timeout=120) as http:
            barrier.wait()
            return http.post(url, json=COMPARISON, headers={**headers, "Idempotency-Key": "k"})

    with ThreadPoolExecutor(max_workers=senders) as pool:
        answers = list(pool.map(send, range(senders)))
    assert [a.status_code for a in answers] == [201] * senders, [a.text for a in answers]
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    assert expert_judgments(store) == ["a"]


NUL = "\u0000"
SURROGATE = "\\ud800"  # as a JSON escape: Python cannot hold it in a str literal to send


def test_text_no_store_can_hold_is_a_422_naming_the_field(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=1)
    headers = bearer(world)
    url = lease(client, world, headers)
    for escape, what in (("\\u0000", "NUL"), (SURROGATE, "unpaired surrogate")):
        body = '{"kind": "comparison", "choice": "a", "rationale": "why' + escape + '"}'
        refused = client.post(
            url, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert refused.status_code == 422, refused.text
        message = refused.json()["message"]
        assert "rationale" in message and what in message
    skipped = client.post(
        url.replace("/judgment", "/skip"), json={"reason": f"no{NUL}pe"}, headers=headers
    )
    assert skipped.status_code == 422 and "reason" in skipped.json()["message"]
    blank = client.post(url.replace("judgment", "skip"), json={"reason": "  "}, headers=headers)
    assert blank.status_code in (400, 422)
    assert expert_judgments(store) == []
    # a page's form and a query say which field too
    admin = client.get("/api/v1/projects", params={"q": NUL}, headers=bearer(world))
    assert admin.status_code == 422 and "'q'" in admin.json()["message"]
    assert client.post(url, json=COMPARISON, headers=headers).status_code == 201  # still works


@pytest.mark.parametrize(
    ("line", "field", "what"),
    [
        ('{"prompt": "Hi\\u0000", "chosen": "a", "rejected": "b"}', "prompt", "NUL"),
        ('{"prompt": "Hi", "chosen": "a\\ud800", "rejected": "b"}', "chosen", "surrogate"),
        ('{"prompt": "  \\n ", "chosen": "a", "rejected": "b"}', "prompt", "empty"),
        (
            '{"prompt": [{"role": "user", "content": "Hi"}], '
            '"chosen": [{"role": "assistant", "content": "x\\u0000"}], '
            '"rejected": [{"role": "assistant", "content": "y"}]}',
            "chosen[0].content",
            "NUL",
        ),
    ],
)
def test_an_import_with_such_text_names_file_line_and_field_and_stores_nothing(
    store: Store, tmp_path: Path, line: str, field: str, what: str
) -> None:
    path = tmp_path / "pairs.jsonl"
    good = '{"prompt": "Fine", "chosen": "yes", "rejected": "no"}'
    path.write_text(f"{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(FormatError) as raised:
        import_file(store, path=path, project="text")
    error = raised.value
    assert (error.line, error.field) == (2, field) and what in error.reason
    assert str(path) in str(error)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(ComparisonRow)) == 0
        assert session.scalar(select(func.count()).select_from(ImportRow)) == 0
        assert session.scalar(select(func.count()).select_from(ProjectRow)) == 0


def test_the_same_records_in_other_bytes_are_refused_unless_only_new(
    store: Store, tmp_path: Path
) -> None:
    pairs = [
        {"prompt": f"Question {n}?", "chosen": f"Good {n}.", "rejected": f"Bad {n}."}
        for n in range(5)
    ]
    lines = [json.dumps(pair) for pair in pairs]
    first = tmp_path / "pairs.jsonl"
    first.write_bytes("".join(f"{line}\n" for line in lines[:3]).encode())
    assert import_file(store, path=first, project="dup", source="lab").records_stored == 3

    crlf = tmp_path / "pairs-crlf.jsonl"  # the same three, Windows line endings
    crlf.write_bytes("".join(f"{line}\r\n" for line in lines[:3]).encode())
    with pytest.raises(StoreError, match="3 of its 3 records are stored already"):
        import_file(store, path=crlf, project="dup", source="lab")
    grown = tmp_path / "pairs-grown.jsonl"  # a dataset that grew by two
    grown.write_bytes("".join(f"{line}\r\n" for line in lines).encode())
    with pytest.raises(StoreError, match="--only-new stores the 2 new ones"):
        import_file(store, path=grown, project="dup", source="lab")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(ComparisonRow)) == 3

    added = import_file(store, path=grown, project="dup", source="lab", only_new=True)
    assert added.records_stored == 2 and added.skipped[ALREADY_STORED] == 3
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(ComparisonRow)) == 5
    # another source's identical pairs are that source's judgments: stored
    other = import_file(store, path=crlf, project="dup", source="second-lab")
    assert other.records_stored == 3


def test_a_chat_file_repeating_its_own_prompts_imports_and_again_is_refused(
    store: Store, tmp_path: Path
) -> None:
    chat = {"messages": [{"role": "user", "content": "Hi"}]}
    path = tmp_path / "chat.jsonl"
    path.write_text(f"{json.dumps(chat)}\n{json.dumps(chat)}\n", encoding="utf-8")
    assert import_file(store, path=path, project="chat").records_stored == 2
    again = tmp_path / "chat-again.jsonl"
    again.write_text(json.dumps(chat) + "\r\n", encoding="utf-8")
    with pytest.raises(StoreError, match="stored already"):
        import_file(store, path=again, project="chat")


def test_the_admin_upload_refuses_stored_records_unless_only_new(
    store: Store, tmp_path: Path, client: TestClient
) -> None:
    world = make_world(store, tmp_path, pairs=1)
    with store.session() as session:
        token = create_api_token(session, user_id=world.admin.user_id, name="admin")
    admin = {"Authorization": f"Bearer {token}"}
    lines = [
        json.dumps({"prompt": f"Upload {n}?", "chosen": f"Yes {n}", "rejected": f"No {n}"})
        for n in range(3)
    ]
    url = f"/api/v1/projects/{world.project_id}/imports"

    def upload(text: str, **form: str) -> Any:
        files = {"file": ("lab.jsonl", text.encode(), "application/jsonl")}
        return client.post(url, headers=admin, files=files, data={"source": "lab", **form})

    assert upload("\n".join(lines[:2]) + "\n").status_code == 201
    again = upload("\r\n".join(lines[:2]) + "\r\n")
    assert again.status_code == 400 and "stored already" in again.json()["message"]
    grown = upload("\r\n".join(lines) + "\r\n", only_new="true")
    assert grown.status_code == 201, grown.text
    assert grown.json()["stored"] == 1 and grown.json()["skipped"] == {ALREADY_STORED: 2}
