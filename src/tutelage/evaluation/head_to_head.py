"""The policy against its reference on open questions: both answer the same prompts
(greedy), a reward model says which answer is better, and the two answers can go back to
the experts as a blinded comparison project.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutelage.evaluation.errors import EvaluationError
from tutelage.evaluation.intervals import bootstrap_mean_interval
from tutelage.records import ChatExample, Completion, PreferencePair, Prompt

__all__ = ["WinRate", "answer_prompts", "read_prompts", "to_project", "win_rate"]


def read_prompts(path: Path, limit: int | None = None) -> list[Prompt]:
    """Return the prompts of a chat or preference file (any format `tutelage import`
    reads), at most `limit`; the answers in the file are not used."""
    from tutelage.formats import read_file

    found: list[Prompt] = []
    for item in read_file(path):
        if item.error is not None:
            raise item.error
        record = item.record
        if isinstance(record, PreferencePair | ChatExample):
            found.append(record.prompt)
        if limit is not None and len(found) >= limit:
            break
    if not found:
        raise EvaluationError(f"{path}: no prompts")
    return found


def answer_prompts(
    model: str, prompts: Sequence[Prompt], *, max_new_tokens: int = 128
) -> list[Completion]:
    """Return `model`'s greedy answer to each prompt (a folder, a bundled name, or an
    OpenAI-compatible URL#model)."""
    from tutelage.generation import backend_for

    backend = backend_for(model)
    answers = backend.generate(list(prompts), n=1, temperature=0, max_new_tokens=max_new_tokens)
    return [choices[0] for choices in answers]


@dataclass(frozen=True)
class WinRate:
    """How often the policy's answer got the higher reward (ties half), with a bootstrap
    95% interval, over `n` prompts, judged by the reward model `judge`."""

    judge: str
    n: int
    rate: float
    low: float | None
    high: float | None

    def summary(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "n": self.n,
            "rate": self.rate,
            "low": self.low,
            "high": self.high,
        }


def win_rate(
    judge: str,
    prompts: Sequence[Prompt],
    ours: Sequence[Completion],
    theirs: Sequence[Completion],
) -> WinRate:
    """Return how often `judge` (a reward-model folder) prefers `ours` to `theirs`."""
    from tutelage.evaluation.length import credit
    from tutelage.training.data import TrainingPair
    from tutelage.training.scoring import RewardScorer

    pairs = []
    for prompt, mine, other in zip(prompts, ours, theirs, strict=True):
        messages = tuple((str(m.role), m.content) for m in prompt.messages)
        flat = "\n".join(f"{r}: {c}" for r, c in messages)
        pairs.append(TrainingPair(flat, mine.text, other.text, messages=messages))
    members = RewardScorer(judge).score_pairs(pairs)
    credits = [
        credit(sum(m[i][0] for m in members), sum(m[i][1] for m in members))
        for i in range(len(pairs))
    ]
    low, high = bootstrap_mean_interval(credits)
    return WinRate(judge, len(pairs), sum(credits) / len(pairs), low, high)


def to_project(
    store: Any,
    *,
    name: str,
    prompts: Sequence[Prompt],
    ours: Sequence[Completion],
    theirs: Sequence[Completion],
    instructions: str,
    on_done: Callable[[int], None] | None = None,
) -> int:
    """Create project `name` with each prompt and the two answers, and one comparison
    item each (shown to experts blinded, in random order); return the items made."""
    from tutelage.records import Project, TaskKind
    from tutelage.store.projects import create_project
    from tutelage.store.writer import RecordWriter
    from tutelage.workspace.items import build_items

    with store.session() as session:
        row = create_project(
            session,
            project=Project(
                name=name, instructions=instructions, task_kinds=(TaskKind.COMPARISON,)
            ),
        )
        writer = RecordWriter(session, project_id=row.id)
        for prompt, mine, other in zip(prompts, ours, theirs, strict=True):
            prompt_id = writer.prompt_id(prompt)
            writer.completion_id(prompt_id, mine)
            writer.completion_id(prompt_id, other)
        built = build_items(
            session, project_id=row.id, kinds=(TaskKind.COMPARISON,), actor_id=None, max_answers=2
        )
    made = int(built.created.get(TaskKind.COMPARISON.value, 0))
    if on_done is not None:
        on_done(made)
    return made
