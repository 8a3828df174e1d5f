"""Writing prompts, completions and judgments into a project within one session.

Importers and generators add the same things: a prompt is stored once per project
(by content hash), a completion once per prompt, and judgments point at both.
Core inserts are used rather than ORM objects so that a long import in one
transaction does not grow the session's identity map with every row.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from tutelage.records import Comparison, Completion, Prompt
from tutelage.store.tables import Base, ComparisonRow, CompletionRow, PromptRow, utcnow

__all__ = ["RecordWriter"]

_CACHE_SIZE = 200_000  # ids remembered per kind; older ones are looked up again

# Built once: constructing a statement per row cost more than executing it.
_prompts = Base.metadata.tables[PromptRow.__tablename__]
_completions = Base.metadata.tables[CompletionRow.__tablename__]
_FIND_PROMPT = select(_prompts.c.id).where(
    _prompts.c.project_id == bindparam("project_id"), _prompts.c.key == bindparam("key")
)
_ADD_PROMPT = insert(_prompts).returning(_prompts.c.id)
_FIND_COMPLETION = select(_completions.c.id).where(
    _completions.c.prompt_id == bindparam("prompt_id"), _completions.c.key == bindparam("key")
)
_ADD_COMPLETION = insert(_completions).returning(_completions.c.id)
_ADD_COMPARISON = insert(Base.metadata.tables[ComparisonRow.__tablename__])


class _LRU(OrderedDict[Any, int]):
    def remember(self, key: Any, value: int) -> int:
        self[key] = value
        if len(self) > _CACHE_SIZE:
            self.popitem(last=False)
        return value


class RecordWriter:
    """Adds records to one project, reusing identical prompts and completions."""

    def __init__(self, session: Session, *, project_id: int, import_id: int | None = None):
        self.session = session
        self.project_id = project_id
        self.import_id = import_id
        self.prompts_added = 0
        self.completions_added = 0
        self.comparisons_added = 0
        self._prompt_ids = _LRU()
        self._completion_ids = _LRU()
        self._pending_comparisons: list[dict[str, Any]] = []

    def prompt_id(self, prompt: Prompt) -> int:
        """Return the id of `prompt` in the project, storing it if new."""
        key = prompt.key()
        if key in self._prompt_ids:
            return self._prompt_ids[key]
        connection = self.session.connection()
        found = connection.execute(
            _FIND_PROMPT, {"project_id": self.project_id, "key": key}
        ).scalar()
        if found is None:
            found = connection.execute(
                _ADD_PROMPT,
                {
                    "project_id": self.project_id,
                    "key": key,
                    "messages": [m.model_dump() for m in prompt.messages],
                    "import_id": self.import_id,
                    "created_at": utcnow(),
                },
            ).scalar()
            self.prompts_added += 1
        assert found is not None
        return self._prompt_ids.remember(key, found)

    def completion_id(self, prompt_id: int, completion: Completion) -> int:
        """Return the id of `completion` under the prompt, storing it if new."""
        key = (prompt_id, completion.key())
        if key in self._completion_ids:
            return self._completion_ids[key]
        connection = self.session.connection()
        found = connection.execute(
            _FIND_COMPLETION, {"prompt_id": prompt_id, "key": key[1]}
        ).scalar()
        if found is None:
            found = connection.execute(
                _ADD_COMPLETION,
                {
                    "prompt_id": prompt_id,
                    "key": key[1],
                    "text": completion.text,
                    "model_id": completion.model_id,
                    "model_version": completion.model_version,
                    "generation": completion.generation,
                    "import_id": self.import_id,
                    "created_at": utcnow(),
                },
            ).scalar()
            self.completions_added += 1
        assert found is not None
        return self._completion_ids.remember(key, found)

    def add_comparison(
        self,
        *,
        prompt_id: int,
        a_id: int,
        b_id: int,
        comparison: Comparison,
        expert_id: int | None = None,
    ) -> None:
        """Queue a comparison between stored completions; written in batches by `flush`.

        `expert_id` is the stored expert named by the provenance, when an expert made it.
        """
        provenance = comparison.provenance
        self._pending_comparisons.append(
            {
                "project_id": self.project_id,
                "prompt_id": prompt_id,
                "completion_a_id": a_id,
                "completion_b_id": b_id,
                "outcome": comparison.outcome.value,
                "strength": comparison.strength.value if comparison.strength else None,
                "criteria": comparison.criteria,
                "rationale": comparison.rationale,
                "expert_id": expert_id,
                "source": provenance.source,
                "import_id": self.import_id,
                "created_at": provenance.created_at,
                "active_seconds": provenance.active_seconds,
                "shown": provenance.shown,
            }
        )
        if len(self._pending_comparisons) >= 1000:
            self.flush()

    def flush(self) -> None:
        if self._pending_comparisons:
            self.session.connection().execute(_ADD_COMPARISON, self._pending_comparisons)
            self.comparisons_added += len(self._pending_comparisons)
            self._pending_comparisons = []
