"""Evaluation sets: benchmark files registered so versions can be checked against them.

An eval set is read with the importer's readers (`tutelage.formats`), so any format
`tutelage import` reads will do. Each record becomes one item at its 0-based position
in the file (the n-th record read, counting from 0), with its prompt flattened as
"role: content" lines (as versions flatten theirs) and its answer: the chosen answer of
a preference pair, the final assistant message of a chat example, or "" when none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select

from tutelage.datasets.versions import DatasetError
from tutelage.files import file_sha256
from tutelage.formats import FormatError, detect_format, read_file
from tutelage.records import ChatExample, Message, PreferencePair
from tutelage.store.dataset_tables import EvalItemRow, EvalSetRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tutelage.store import Store

__all__ = [
    "EvalItem",
    "EvalSet",
    "eval_items",
    "eval_set_count",
    "list_eval_sets",
    "register_eval_set",
]

_CHUNK = 5_000


@dataclass(frozen=True)
class EvalSet:
    """A registered evaluation set."""

    name: str
    filename: str
    format: str
    sha256: str
    count: int
    created_at: datetime


@dataclass(frozen=True)
class EvalItem:
    """One item of an eval set, at its 0-based `position` in the registered file."""

    eval_set: str
    position: int
    prompt_text: str
    answer_text: str


def _flatten(messages: tuple[Message, ...]) -> str:
    return "\n".join(f"{m.role}: {m.content}" for m in messages)


def _texts(record: PreferencePair | ChatExample) -> tuple[str, str]:
    """Return (prompt text, answer text) of a record read from a file."""
    if isinstance(record, PreferencePair):
        return _flatten(record.prompt.messages), record.chosen.text
    answer = record.answer.text if record.answer is not None else ""
    return _flatten(record.prompt.messages), answer


def _eval_set(row: EvalSetRow) -> EvalSet:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return EvalSet(row.name, row.filename, row.format, row.sha256, row.count, created)


def register_eval_set(store: Store, *, name: str, path: Path, fmt: str | None = None) -> EvalSet:
    """Read `path` and store its items as the eval set `name`; all or nothing.

    A record that cannot be read fails the registration with its line named: a
    skipped record would shift every later position.
    """
    if not name.strip():
        raise DatasetError("an eval set needs a name")
    if not path.is_file():
        raise DatasetError(f"no such file: {path}")
    fmt = fmt or detect_format(path)
    with store.session() as session:
        if session.scalar(select(EvalSetRow.id).where(EvalSetRow.name == name)) is not None:
            raise DatasetError(f"an eval set named {name!r} exists already")
        row = EvalSetRow(
            name=name,
            filename=path.name,
            format=fmt,
            sha256=file_sha256(path),
            count=0,
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        pending: list[dict[str, object]] = []
        count = 0
        for item in read_file(path, fmt):
            if item.error is not None:
                raise item.error
            assert item.record is not None
            prompt_text, answer_text = _texts(item.record)
            pending.append(
                {
                    "eval_set_id": row.id,
                    "position": count,
                    "prompt_text": prompt_text,
                    "answer_text": answer_text,
                }
            )
            count += 1
            if len(pending) >= _CHUNK:
                session.execute(insert(EvalItemRow), pending)
                pending = []
        if pending:
            session.execute(insert(EvalItemRow), pending)
        if count == 0:
            raise FormatError(path, None, None, "no records")
        row.count = count
        session.flush()
        return _eval_set(row)


def list_eval_sets(session: Session) -> list[EvalSet]:
    """Return the registered eval sets, by name."""
    return [_eval_set(r) for r in session.scalars(select(EvalSetRow).order_by(EvalSetRow.name))]


def eval_items(session: Session) -> list[EvalItem]:
    """Return the items of every registered eval set, by set name and position."""
    rows = session.execute(
        select(
            EvalSetRow.name, EvalItemRow.position, EvalItemRow.prompt_text, EvalItemRow.answer_text
        )
        .join(EvalSetRow, EvalSetRow.id == EvalItemRow.eval_set_id)
        .order_by(EvalSetRow.name, EvalItemRow.position)
    )
    return [EvalItem(name, position, prompt, answer) for name, position, prompt, answer in rows]


def eval_set_count(session: Session) -> int:
    """Return how many eval sets are registered."""
    return int(session.scalar(select(func.count()).select_from(EvalSetRow)) or 0)
