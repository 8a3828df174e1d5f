"""A long read (an export) reads one snapshot and holds no writer: on SQLite the experts'
submits go on while it runs, it does not see them, and it cannot write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError

from tutelage.interchange import export_project, import_file
from tutelage.store import Store, open_store
from tutelage.store.projects import get_project
from tutelage.store.tables import PromptRow, utcnow


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": f"Q{n}?", "chosen": f"yes {n}", "rejected": f"no {n}"}) + "\n"
            for n in range(3)
        ),
        encoding="utf-8",
    )
    import_file(store, path=pairs, project="p")
    return store


def prompts(store: Store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(PromptRow)) or 0


def test_a_read_session_holds_no_writer_and_reads_one_snapshot(sqlite_store: Store) -> None:
    store = sqlite_store
    with store.read_session() as reader:
        before = reader.scalar(select(func.count()).select_from(PromptRow))
        writer = store.session_if_free()
        assert writer is not None, "the read holds SQLite's writer"
        with writer as session:  # an expert's submit, meanwhile
            project_id = get_project(session, name="p").id
            session.execute(
                insert(PromptRow).values(
                    project_id=project_id, key="k", messages=[], created_at=utcnow()
                )
            )
        assert reader.scalar(select(func.count()).select_from(PromptRow)) == before
        with pytest.raises(OperationalError, match="readonly"):
            reader.execute(
                insert(PromptRow).values(
                    project_id=project_id, key="k2", messages=[], created_at=utcnow()
                )
            )
    assert prompts(store) == before + 1  # committed, and nothing of the reader's


def test_an_export_leaves_the_connection_writable(sqlite_store: Store, tmp_path: Path) -> None:
    export_project(sqlite_store, project="p", fmt="trl", out=tmp_path / "out.jsonl")
    assert len((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    extra = tmp_path / "more.jsonl"
    extra.write_text(json.dumps({"prompt": "R?", "chosen": "a", "rejected": "b"}) + "\n", "utf-8")
    assert import_file(sqlite_store, path=extra, project="p").records_stored == 1
