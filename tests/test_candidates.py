"""`tutelage generate`: candidates for a project's prompts, stored with their provenance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from test_generation import serve  # noqa: F401  (the in-process OpenAI-compatible server)
from tutelage.generation import OpenAIBackend
from tutelage.generation.candidates import add_candidates, prompts_needing_candidates
from tutelage.interchange import import_file
from tutelage.store import Store, open_store
from tutelage.store.tables import CompletionRow


def chat_file(path: Path) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": "abc"}]},
        {"messages": [{"role": "user", "content": "xyz"}, {"role": "assistant", "content": "!"}]},
        {"messages": [{"role": "user", "content": "full"}]},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_candidates_fill_each_prompt_up_to_n(store: Store, tmp_path: Path, serve: Any) -> None:  # noqa: F811
    server = serve(numbered=True)
    import_file(store, path=chat_file(tmp_path / "chat.jsonl"), project="p")
    assert [missing for _, missing in prompts_needing_candidates(store, project="p", n=2)] == [
        2,
        1,
        2,
    ]
    backend = OpenAIBackend(server.url, "echo-1")

    report = add_candidates(store, project="p", backend=backend, n=2, seed=7, batch_size=2)

    assert (report.prompts, report.completions_added, report.duplicates) == (3, 5, 0)
    with store.session() as session:
        rows = session.scalars(select(CompletionRow).where(CompletionRow.model_id == "echo-1"))
        generated = {row.text: row for row in rows}
    assert set(generated) == {"cba #0", "cba #1", "zyx #0", "lluf #0", "lluf #1"}
    assert generated["cba #0"].generation["backend"] == "openai"
    assert prompts_needing_candidates(store, project="p", n=2) == []
    again = add_candidates(store, project="p", backend=backend, n=2)
    assert again.prompts == 0 and again.completions_added == 0


def test_identical_answers_are_stored_once_and_counted(
    store: Store,
    tmp_path: Path,
    serve: Any,  # noqa: F811
) -> None:
    server = serve()  # answers every one of the n choices with the same text
    import_file(store, path=chat_file(tmp_path / "chat.jsonl"), project="p")
    report = add_candidates(store, project="p", backend=OpenAIBackend(server.url, "e"), n=2)
    assert report.completions_added == 3 and report.duplicates == 2


def test_generate_command_against_a_server(tmp_path: Path, serve: Any) -> None:  # noqa: F811
    server = serve(numbered=True)
    db = f"sqlite:///{tmp_path / 'g.db'}"
    store = open_store(db)
    import_file(store, path=chat_file(tmp_path / "chat.jsonl"), project="p")
    store.close()

    result = subprocess.run(
        [sys.executable, "-m", "tutelage", "generate", "--project", "p", "--n", "2",
         "--model", f"{server.url}/v1#echo-2", "--db", db],
        capture_output=True, text=True, env=dict(os.environ), timeout=600,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "added 5 completions from 'echo-2' to 3 prompts" in result.stdout
    unknown = subprocess.run(
        [sys.executable, "-m", "tutelage", "generate", "--project", "nope", "--db", db],
        capture_output=True, text=True, env=dict(os.environ), timeout=600,
    )  # fmt: skip
    assert unknown.returncode == 1 and "no project named 'nope'" in unknown.stderr
