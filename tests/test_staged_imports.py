"""A large import writes in short transactions and shows nothing until it is whole.

While it reads its file, the writer is free between batches (on SQLite an expert's submit
can start at any moment), and no reader sees any of its records; a failure part-way
leaves nothing, staged or visible.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tutelage.formats import FormatError
from tutelage.interchange import import_file
from tutelage.interchange.importing import ALREADY_STORED, BATCH
from tutelage.records import Project
from tutelage.store import Store
from tutelage.store.projects import create_project
from tutelage.store.staging_tables import ImportStagingRow, StagedComparisonRow
from tutelage.store.tables import ComparisonRow, PromptRow

PAIRS = 2 * BATCH + 500  # three batches


def pairs_file(folder: Path, *, bad_line: int | None = None) -> Path:
    path = folder / "many.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for n in range(1, PAIRS + 1):
            row = {"prompt": f"Question {n}?", "chosen": f"Yes, {n}.", "rejected": "No."}
            if n == bad_line:
                row = {"prompt": f"Question {n}?", "chosen": f"Yes, {n}."}
            out.write(json.dumps(row) + "\n")
    return path


def counts(store: Store) -> tuple[int, int]:
    with store.read_session() as session:
        return (
            session.scalar(select(func.count()).select_from(ComparisonRow)) or 0,
            session.scalar(select(func.count()).select_from(StagedComparisonRow)) or 0,
        )


def test_the_writer_is_free_between_batches_and_readers_see_nothing_until_the_end(
    store: Store, tmp_path: Path
) -> None:
    seen: list[tuple[int, tuple[int, int]]] = []

    def on_line(line: int) -> None:
        if line in (BATCH + 10, 2 * BATCH + 10):
            # What an expert's submit does on SQLite: take the writer without waiting.
            free = store.session_if_free()
            assert free is not None, f"the import held the writer at line {line}"
            with free as session:  # and write something of its own
                create_project(session, project=Project(name=f"other-{line}"))
            seen.append((line, counts(store)))

    report = import_file(store, path=pairs_file(tmp_path), project="big", on_line=on_line)

    # Mid-way: batches staged, none of them in the project.
    assert seen == [(BATCH + 10, (0, BATCH)), (2 * BATCH + 10, (0, 2 * BATCH))]
    assert report.comparisons_added == report.records_stored == PAIRS
    assert counts(store) == (PAIRS, 0)  # published whole; the staging is gone
    with store.read_session() as session:
        prompts = session.scalars(select(PromptRow.messages).order_by(PromptRow.id)).all()
        assert session.scalar(select(func.count()).select_from(ImportStagingRow)) == 0
    assert prompts[0][0]["content"] == "Question 1?"  # in the file's order
    assert prompts[-1][0]["content"] == f"Question {PAIRS}?"


def test_a_bad_line_after_two_batches_leaves_nothing_staged_or_visible(
    store: Store, tmp_path: Path
) -> None:
    path = pairs_file(tmp_path, bad_line=2 * BATCH + 100)
    with pytest.raises(FormatError) as raised:
        import_file(store, path=path, project="big")
    assert f"many.jsonl:{2 * BATCH + 100}" in str(raised.value)
    assert counts(store) == (0, 0)
    with store.read_session() as session:
        assert session.scalar(select(func.count()).select_from(ImportStagingRow)) == 0
        assert session.scalar(select(func.count()).select_from(PromptRow)) == 0


def test_a_second_import_reuses_the_stored_prompts_and_refuses_stored_pairs(
    store: Store, tmp_path: Path
) -> None:
    first = import_file(store, path=pairs_file(tmp_path), project="big", source="bank")
    again = tmp_path / "again.jsonl"  # the same pairs with other bytes, and one new answer
    lines = pairs_file(tmp_path).read_text(encoding="utf-8").splitlines()
    extra = {"prompt": "Question 1?", "chosen": "Yes, and more.", "rejected": "No."}
    again.write_text("\r\n".join([*lines, json.dumps(extra)]) + "\r\n", encoding="utf-8")
    second = import_file(store, path=again, project="big", source="bank", only_new=True)
    assert first.prompts_added == PAIRS and first.completions_added == 2 * PAIRS
    assert second.records_stored == 1 and second.skipped[ALREADY_STORED] == PAIRS
    assert (second.prompts_added, second.completions_added) == (0, 1)
    assert counts(store) == (PAIRS + 1, 0)
