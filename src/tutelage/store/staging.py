"""Staged imports: records written in batches of short transactions, published at once.

An import of 10,000 pairs used to write row by row inside one transaction: on SQLite that
held the one writer, and so every expert's submit, for the whole run. Now each batch of
records is looked up against the project in a read-only snapshot (no writer held), then
written into the staging tables in one short transaction; at the end `publish` moves
them into the project's tables with three INSERT ... SELECT statements in the caller's
one short transaction. Readers never look at the staging tables, so to them the import
is all or nothing. A staging that failed is discarded; one that a kill left behind is
found by `stale_stagings` (its process is gone, or it stopped moving) and removed by the
next import or `tutelage db doctor`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Integer, and_, delete, exists, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from tutelage.records import ChatExample, ComparisonOutcome, Completion, PreferencePair
from tutelage.store import Store
from tutelage.store.staging_tables import (
    ImportStagingRow,
    StagedComparisonRow,
    StagedCompletionRow,
    StagedPromptRow,
)
from tutelage.store.tables import Base, ComparisonRow, CompletionRow, ProjectRow, PromptRow, utcnow

__all__ = ["Published", "Staging", "remove_stagings", "stale_stagings"]

Record = PreferencePair | ChatExample

STALE_AFTER = timedelta(hours=1)  # a live import moves on with every batch, in seconds

_tables = Base.metadata.tables
_prompts, _completions = _tables[PromptRow.__tablename__], _tables[CompletionRow.__tablename__]
_comparisons = _tables[ComparisonRow.__tablename__]
_staged_prompts = _tables[StagedPromptRow.__tablename__]
_staged_completions = _tables[StagedCompletionRow.__tablename__]
_staged_comparisons = _tables[StagedComparisonRow.__tablename__]


@dataclass(frozen=True)
class Published:
    """How many rows of each kind an import added to its project."""

    prompts: int
    completions: int
    comparisons: int


class _BulkInsert:
    """An INSERT of many rows whose values are made ready before the writer is taken.

    SQLAlchemy's `execute(statement, rows)` turns each row's values into the driver's
    (JSON to text, datetimes to SQLite's format) inside the transaction: two thirds of a
    staging batch's time. Here the same bind processors of the columns' types run first,
    and the transaction only hands the finished rows to the driver's `executemany`.
    """

    def __init__(self, store: Store, table: Any, *, skip_repeats: bool) -> None:
        dialect = store.engine.dialect
        module = postgresql if dialect.name == "postgresql" else sqlite
        statement = module.insert(table)
        if skip_repeats:  # a row the staging holds already (a prompt the file repeats)
            statement = statement.on_conflict_do_nothing()
        columns = [c for c in table.columns if not c.primary_key]
        compiled = statement.compile(dialect=dialect, column_keys=[c.key for c in columns])
        self.sql = str(compiled)
        self.order = list(compiled.positiontup or []) if compiled.positional else None
        self.processors = {c.key: c.type._cached_bind_processor(dialect) for c in columns}

    def ready(self, rows: Sequence[dict[str, Any]]) -> list[Any]:
        """The rows as the driver takes them (outside any transaction)."""
        done = [
            {k: (f(v) if (f := self.processors[k]) else v) for k, v in row.items()} for row in rows
        ]
        if self.order is None:
            return done
        return [tuple(row[k] for k in self.order) for row in done]

    def run(self, connection: Any, rows: list[Any]) -> None:
        if rows:
            connection.exec_driver_sql(self.sql, rows)


class Staging:
    """One import's records on their way into a project named `project`."""

    def __init__(self, store: Store, *, project: str, filename: str):
        self.store = store
        self.project = project
        with store.session() as session:
            staging_id = session.scalar(
                insert(ImportStagingRow)
                .values(
                    project=project, filename=filename, host=socket.gethostname(), pid=os.getpid()
                )
                .returning(ImportStagingRow.id)
            )
        assert staging_id is not None
        self.id = staging_id
        self._inserts = [
            _BulkInsert(store, _staged_prompts, skip_repeats=True),
            _BulkInsert(store, _staged_completions, skip_repeats=True),
            _BulkInsert(store, _staged_comparisons, skip_repeats=False),
        ]

    def add(self, records: Sequence[Record], source: str) -> int:
        """Stage those of `records` the project does not hold already (a pair with this
        label from `source`, a chat prompt with its answer); return how many."""
        keyed = [_Keyed(r, r.prompt.key(), tuple(c.key() for c in _answers(r))) for r in records]
        known = self._stored_already(keyed, source)
        new = [k for k, stored in zip(keyed, known, strict=True) if not stored]
        self._stage(new, source)
        return len(new)

    def _stored_already(self, records: Sequence[_Keyed], source: str) -> list[bool]:
        """Read from a snapshot: no writer is held."""
        with self.store.read_session() as session:
            project_id = session.scalar(
                select(ProjectRow.id).where(ProjectRow.name == self.project)
            )
            if project_id is None:
                return [False] * len(records)
            prompt_keys = {record.prompt_key for record in records}
            prompt_ids = dict(
                session.execute(
                    select(_prompts.c.key, _prompts.c.id).where(
                        _prompts.c.project_id == project_id, _prompts.c.key.in_(prompt_keys)
                    )
                ).all()
            )
            if not prompt_ids:
                return [False] * len(records)
            answers = {key for r in records for key in r.answer_keys}
            completion_ids = {
                (prompt_id, key): completion_id
                for completion_id, prompt_id, key in session.execute(
                    select(_completions.c.id, _completions.c.prompt_id, _completions.c.key).where(
                        _completions.c.prompt_id.in_(set(prompt_ids.values())),
                        _completions.c.key.in_(answers),
                    )
                )
            }
            known = [_known(r, prompt_ids, completion_ids) for r in records]
            pairs = {ids for ids in known if isinstance(ids, tuple) and len(ids) == 2}
            compared = set()
            if pairs:
                compared = set(
                    session.execute(
                        select(_comparisons.c.completion_a_id, _comparisons.c.completion_b_id)
                        .where(
                            _comparisons.c.project_id == project_id,
                            _comparisons.c.source == source,
                            _comparisons.c.outcome == ComparisonOutcome.A.value,
                            _comparisons.c.completion_a_id.in_({a for a, _ in pairs}),
                        )
                        .distinct()
                    )
                )
        return [
            ids in compared if isinstance(r.record, PreferencePair) else ids is not None
            for r, ids in zip(records, known, strict=True)
        ]

    def _stage(self, records: Sequence[_Keyed], source: str) -> None:
        """Write `records` into the staging tables, in one short transaction."""
        if not records:
            return
        now = utcnow()
        prompts: dict[str, dict[str, Any]] = {}
        completions: dict[tuple[str, str], dict[str, Any]] = {}
        comparisons: list[dict[str, Any]] = []
        for keyed in records:
            record, prompt_key = keyed.record, keyed.prompt_key
            if prompt_key not in prompts:
                prompts[prompt_key] = {
                    "staging_id": self.id,
                    "key": prompt_key,
                    "messages": [m.model_dump() for m in record.prompt.messages],
                    "created_at": now,
                }
            for completion, key in zip(_answers(record), keyed.answer_keys, strict=True):
                if (prompt_key, key) not in completions:
                    completions[prompt_key, key] = self._completion(
                        prompt_key, key, completion, now
                    )
            if isinstance(record, PreferencePair):
                comparisons.append(
                    {
                        "staging_id": self.id,
                        "prompt_key": prompt_key,
                        "a_key": keyed.answer_keys[0],
                        "b_key": keyed.answer_keys[1],
                        "outcome": ComparisonOutcome.A.value,
                        "strength": record.strength.value if record.strength else None,
                        "criteria": {},
                        "rationale": "",
                        "source": source,
                        "created_at": now,
                        "active_seconds": 0.0,
                        "shown": {},
                    }
                )
        ready = [
            (bulk, bulk.ready(rows))
            for bulk, rows in zip(
                self._inserts,
                (list(prompts.values()), list(completions.values()), comparisons),
                strict=True,
            )
        ]
        with self.store.session() as session:
            connection = session.connection()
            for bulk, rows in ready:
                bulk.run(connection, rows)
            connection.execute(
                update(ImportStagingRow)
                .where(ImportStagingRow.id == self.id)
                .values(updated_at=now)
            )

    def _completion(
        self, prompt_key: str, key: str, completion: Completion, now: datetime
    ) -> dict[str, Any]:
        return {
            "staging_id": self.id,
            "prompt_key": prompt_key,
            "key": key,
            "text": completion.text,
            "model_id": completion.model_id,
            "model_version": completion.model_version,
            "generation": completion.generation,
            "created_at": now,
        }

    def publish(self, session: Session, *, project_id: int, import_id: int) -> Published:
        """Move the staged records into the project, inside `session`'s transaction;
        prompts and completions the project holds already are reused, not copied."""
        # rowcount of an INSERT ... SELECT is kept only when asked for (SQLAlchemy 2.1)
        connection = session.connection().execution_options(preserve_rowcount=True)
        sp, sc, sx = _staged_prompts.c, _staged_completions.c, _staged_comparisons.c
        p = _prompts.c
        prompts = connection.execute(
            insert(_prompts).from_select(
                ["project_id", "key", "messages", "import_id", "created_at"],
                select(_value(project_id), sp.key, sp.messages, _value(import_id), sp.created_at)
                .where(sp.staging_id == self.id)
                .where(~exists().where(p.project_id == project_id, p.key == sp.key))
                .order_by(sp.id),
            )
        ).rowcount
        c = _completions.c
        completions = connection.execute(
            insert(_completions).from_select(
                [
                    "prompt_id",
                    "key",
                    "text",
                    "model_id",
                    "model_version",
                    "generation",
                    "import_id",
                    "created_at",
                ],
                select(
                    p.id,
                    sc.key,
                    sc.text,
                    sc.model_id,
                    sc.model_version,
                    sc.generation,
                    _value(import_id),
                    sc.created_at,
                )
                .join_from(
                    _staged_completions,
                    _prompts,
                    and_(p.project_id == project_id, p.key == sc.prompt_key),
                )
                .where(sc.staging_id == self.id)
                .where(~exists().where(c.prompt_id == p.id, c.key == sc.key))
                .order_by(sc.id),
            )
        ).rowcount
        chosen, rejected = aliased(_completions), aliased(_completions)
        columns = [
            "project_id",
            "prompt_id",
            "completion_a_id",
            "completion_b_id",
            "outcome",
            "strength",
            "criteria",
            "rationale",
            "source",
            "import_id",
            "created_at",
            "active_seconds",
            "shown",
        ]
        staged = connection.scalar(
            select(func.count()).select_from(_staged_comparisons).where(sx.staging_id == self.id)
        )
        comparisons = connection.execute(
            insert(_comparisons).from_select(
                columns,
                select(
                    _value(project_id),
                    p.id,
                    chosen.c.id,
                    rejected.c.id,
                    sx.outcome,
                    sx.strength,
                    sx.criteria,
                    sx.rationale,
                    sx.source,
                    _value(import_id),
                    sx.created_at,
                    sx.active_seconds,
                    sx.shown,
                )
                .join_from(
                    _staged_comparisons,
                    _prompts,
                    and_(p.project_id == project_id, p.key == sx.prompt_key),
                )
                .join(chosen, and_(chosen.c.prompt_id == p.id, chosen.c.key == sx.a_key))
                .join(rejected, and_(rejected.c.prompt_id == p.id, rejected.c.key == sx.b_key))
                .where(sx.staging_id == self.id)
                .order_by(sx.id),
            )
        ).rowcount
        if comparisons != staged:  # a prompt or answer was deleted while the import ran
            raise RuntimeError(
                f"{(staged or 0) - comparisons} staged comparisons lost their completions"
            )
        return Published(prompts=prompts, completions=completions, comparisons=comparisons)

    def discard(self) -> None:
        """Remove what this import staged (after it published, or when it failed)."""
        remove_stagings(self.store, [self.id])


def _value(number: int) -> Any:
    return literal(number, Integer)


def _answers(record: Record) -> list[Completion]:
    if isinstance(record, PreferencePair):
        return [record.chosen, record.rejected]
    return [record.answer] if record.answer is not None else []


class _Keyed(NamedTuple):
    """A record with its content keys, hashed once."""

    record: Record
    prompt_key: str
    answer_keys: tuple[str, ...]


def _known(
    record: _Keyed, prompt_ids: dict[str, int], completion_ids: dict[tuple[int, str], int]
) -> tuple[int, ...] | None:
    """The stored ids of the record's answers, or None when some part is not stored."""
    prompt_id = prompt_ids.get(record.prompt_key)
    if prompt_id is None:
        return None
    ids = [completion_ids.get((prompt_id, key)) for key in record.answer_keys]
    if None in ids:
        return None
    return tuple(i for i in ids if i is not None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def stale_stagings(store: Store) -> list[ImportStagingRow]:
    """Stagings left by imports that died: their process on this host is gone, or they
    have not moved on for `STALE_AFTER` (an import on another host)."""
    host, now = socket.gethostname(), datetime.now(UTC)
    with store.read_session() as session:
        rows = list(session.scalars(select(ImportStagingRow).order_by(ImportStagingRow.id)))
        session.expunge_all()  # kept whole after the read's rollback
    stale = []
    for row in rows:
        moved = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
        mine = row.host == host and row.pid == os.getpid()
        gone = row.host == host and not _alive(row.pid)
        if not mine and (gone or now - moved > STALE_AFTER):
            stale.append(row)
    return stale


def remove_stagings(store: Store, ids: Sequence[int]) -> None:
    """Delete these stagings and what they staged, in one short transaction."""
    if ids:
        with store.session() as session:
            session.execute(delete(ImportStagingRow).where(ImportStagingRow.id.in_(ids)))
