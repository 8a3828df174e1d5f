"""A simulation anyone can rerun: simulated experts judge real preference pairs in a real
store, and the real loading, consensus and detection code is scored against the truth.

The human label of each pair (its chosen answer) is taken as the truth. Each pair
becomes a workspace comparison item whose canonical order is drawn at random, so "a"
is the truth only half the time; each expert's assignment shows the two answers in a
random order of its own, as the workspace does.

Experts (`SimulationConfig` holds the numbers):

- good: choose the truth with their own accuracy, drawn uniformly from
  `good_accuracy` (default 0.85 to 0.98: paid domain experts who passed a qualification;
  at 0.75 to 0.95 three judgments an item cannot carry 95%, see the README); a wrong
  answer is the other answer (85%), a tie (10%) or "both bad" (5%); they take a median
  of 45 to 150 active seconds;
- adversarial: answer as an expert of accuracy 0.80 to 0.95 would, then flip A and B
  with a probability of 0.70 to 0.90 (so they pass a few gold items by luck); normal speed;
- careless, in turn: *random* (A or B at random, a tie one time in ten), *always A*
  (the answer shown as A, 95% of the time), *too fast* (accuracy 0.55, a median of
  3 to 6 seconds).

Every expert also answers the gold items (pairs set aside, their winner known). An
expert is *detected* when the quality library raises any flag about them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from tutelage.formats import FormatError, read_file
from tutelage.quality.load import expert_worker
from tutelage.quality.persist import analyse_project
from tutelage.records import PreferencePair, Project
from tutelage.store import Store
from tutelage.store.projects import create_project
from tutelage.store.tables import Base, ComparisonRow, CompletionRow, PromptRow, UserRow
from tutelage.store.workspace_tables import AssignmentRow, ItemRow, MembershipRow

__all__ = [
    "SimulatedExpert",
    "SimulationConfig",
    "SimulationResult",
    "read_pairs",
    "run_simulation",
    "simulated_experts",
    "write_simulation",
]

KINDS = ("good", "adversarial", "random", "always_a", "too_fast")
CARELESS = ("random", "always_a", "too_fast")
LABELS = np.array(["a", "b", "tie", "both_bad"], dtype=object)
STRENGTHS = np.array(["slight", "clear", "decisive"], dtype=object)
_BATCH_ITEMS = 20_000  # items written per round of inserts, to bound memory


class SimulationError(ValueError):
    """The simulation cannot run as asked; the message says why."""


@dataclass(frozen=True)
class SimulationConfig:
    """How many experts of which kinds, and how each judges (see the module docstring)."""

    experts: int = 30
    overlap: int = 3
    adversarial: float = 0.2
    careless: float = 0.1
    gold_items: int = 8
    good_accuracy: tuple[float, float] = (0.85, 0.98)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.experts < 2:
            raise SimulationError(f"--experts must be at least 2, got {self.experts}")
        if not 1 <= self.overlap <= self.experts:
            raise SimulationError(
                f"--overlap must be between 1 and --experts ({self.experts}), got {self.overlap}"
            )
        for name in ("adversarial", "careless"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise SimulationError(f"--{name} is a fraction in [0, 1], got {value}")
        if self.adversarial + self.careless > 1:
            raise SimulationError(
                f"--adversarial ({self.adversarial}) and --careless ({self.careless}) "
                "together exceed all experts"
            )
        low, high = self.good_accuracy
        if not 0.5 <= low <= high <= 1:
            raise SimulationError(f"good accuracy must lie in [0.5, 1], got {low}..{high}")
        if self.gold_items < 0:
            raise SimulationError(f"--gold must not be negative, got {self.gold_items}")


@dataclass(frozen=True)
class SimulatedExpert:
    """One simulated expert: their kind and the numbers that drive their answers."""

    handle: str
    kind: str
    accuracy: float  # chance of the true answer before any flip
    flip_rate: float  # adversarial: chance of swapping A and B afterwards
    median_seconds: float

    @property
    def bad(self) -> bool:
        return self.kind != "good"


def simulated_experts(config: SimulationConfig, rng: np.random.Generator) -> list[SimulatedExpert]:
    """The experts of a run: adversarial, then careless in turn, then good ones."""
    adversarial = round(config.adversarial * config.experts)
    careless = round(config.careless * config.experts)
    kinds = (
        ["adversarial"] * adversarial
        + [CARELESS[i % len(CARELESS)] for i in range(careless)]
        + ["good"] * (config.experts - adversarial - careless)
    )
    rng.shuffle(kinds)
    experts = []
    for number, kind in enumerate(kinds):
        accuracy, flip, median = 0.5, 0.0, float(rng.uniform(45, 150))
        if kind == "good":
            accuracy = float(rng.uniform(*config.good_accuracy))
        elif kind == "adversarial":
            accuracy, flip = float(rng.uniform(0.80, 0.95)), float(rng.uniform(0.70, 0.90))
        elif kind == "always_a":
            median = float(rng.uniform(15, 40))
        elif kind == "too_fast":
            accuracy, median = 0.55, float(rng.uniform(3, 6))
        experts.append(SimulatedExpert(f"sim-{number:03d}", kind, accuracy, flip, median))
    return experts


def read_pairs(path: Path, *, limit: int | None = None) -> list[PreferencePair]:
    """The preference pairs of a file the importer reads (first `limit`), distinct pairs only."""
    if not path.is_file():
        raise FormatError(str(path), None, None, "no such file")
    pairs: list[PreferencePair] = []
    seen: set[tuple[str, str, str]] = set()
    for item in read_file(path):
        if item.error is not None:
            raise item.error
        record = item.record
        if not isinstance(record, PreferencePair):
            raise SimulationError(f"{path}: line {item.line} is not a preference pair")
        key = (record.prompt.key(), record.chosen.key(), record.rejected.key())
        if record.chosen.text == record.rejected.text or key in seen:
            continue
        seen.add(key)
        pairs.append(record)
        if limit is not None and len(pairs) >= limit:
            break
    return pairs


@dataclass(frozen=True)
class SimulatedProject:
    """What was written: the project, each worker's expert, and each task item's truth."""

    project: str
    project_id: int
    workers: dict[str, SimulatedExpert]
    truth: dict[int, str]  # task item -> "a" or "b", in the item's canonical order
    judgments: int


def _labels(
    experts: list[SimulatedExpert],
    who: np.ndarray,
    truth: np.ndarray,
    swapped: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Canonical label codes (0 a, 1 b, 2 tie, 3 both bad) of the judgments (who, truth)."""
    kind = np.array([KINDS.index(e.kind) for e in experts])[who]
    accuracy = np.array([e.accuracy for e in experts])[who]
    flip = np.array([e.flip_rate for e in experts])[who]
    n = len(who)
    draw, error, chance = rng.random(n), rng.random(n), rng.random(n)
    wrong = np.where(error < 0.85, 1 - truth, np.where(error < 0.95, 2, 3))
    labels = np.where(draw < accuracy, truth, wrong)
    too_fast = kind == KINDS.index("too_fast")
    labels[too_fast] = np.where(draw < accuracy, truth, 1 - truth)[too_fast]
    flipped = (kind == KINDS.index("adversarial")) & (chance < flip) & (labels < 2)
    labels[flipped] = 1 - labels[flipped]
    random = kind == KINDS.index("random")
    labels[random] = np.where(chance < 0.45, 0, np.where(chance < 0.9, 1, 2))[random]
    always_a = kind == KINDS.index("always_a")
    shown_a = np.where(chance < 0.95, 0, 1)  # the letter shown, then back to canonical
    labels[always_a] = np.where(swapped, 1 - shown_a, shown_a)[always_a]
    return labels


def _chunks(count: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, count, size):
        yield start, min(start + size, count)


def _insert_returning(session: Session, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [int(row_id) for row_id in session.execute(statement, rows).scalars()]


def write_simulation(
    session: Session,
    *,
    name: str,
    pairs: list[PreferencePair],
    config: SimulationConfig,
    progress: Callable[[str, int, int], None] | None = None,
) -> SimulatedProject:
    """Store a project, its experts, items, assignments and judgments (bulk inserts).

    `progress(phase, done, total)` is called as batches are written.
    """
    say = progress or (lambda _phase, _done, _total: None)
    rng = np.random.default_rng(config.seed)
    if len(pairs) <= config.gold_items:
        raise SimulationError(
            f"{len(pairs)} pairs are too few for {config.gold_items} gold items and any task"
        )
    experts = simulated_experts(config, rng)
    tables = Base.metadata.tables
    project_id = create_project(
        session,
        project=Project(
            name=name,
            domain="simulation",
            overlap=config.overlap,
            gold_rate=0.05 if config.gold_items else 0.0,
            consent="Simulated experts judging public preference pairs.",
        ),
    ).id
    now = datetime.now(UTC)
    user_ids = _insert_returning(
        session,
        tables[UserRow.__tablename__],
        [
            {
                "handle": e.handle,
                "display_name": e.kind,
                "expertise": [],
                "created_at": now,
                "email": f"{e.handle}@simulation.invalid",
                "role": "expert",
                "is_active": True,
            }
            for e in experts
        ],
    )
    session.execute(
        insert(tables[MembershipRow.__tablename__]),
        [{"project_id": project_id, "user_id": uid, "created_at": now} for uid in user_ids],
    )
    workers = {expert_worker(uid): e for uid, e in zip(user_ids, experts, strict=True)}

    # Prompts and answers, each stored once (pairs may share a prompt).
    prompt_keys: dict[str, int] = {}
    new_prompts: list[dict[str, Any]] = []
    for pair in pairs:
        key = pair.prompt.key()
        if key not in prompt_keys:
            prompt_keys[key] = len(new_prompts)
            new_prompts.append(
                {
                    "project_id": project_id,
                    "key": key,
                    "created_at": now,
                    "messages": [m.model_dump() for m in pair.prompt.messages],
                }
            )
    prompt_ids = _insert_returning(session, tables[PromptRow.__tablename__], new_prompts)
    completion_index: dict[tuple[int, str], int] = {}
    new_completions: list[dict[str, Any]] = []
    for pair in pairs:
        prompt_id = prompt_ids[prompt_keys[pair.prompt.key()]]
        for answer in (pair.chosen, pair.rejected):
            answer_key = (prompt_id, answer.key())
            if answer_key not in completion_index:
                completion_index[answer_key] = len(new_completions)
                new_completions.append(
                    {
                        "prompt_id": prompt_id,
                        "key": answer_key[1],
                        "text": answer.text,
                        "model_id": answer.model_id,
                        "model_version": answer.model_version,
                        "generation": answer.generation,
                        "created_at": now,
                    }
                )
    completion_ids = _insert_returning(
        session, tables[CompletionRow.__tablename__], new_completions
    )
    say("prompts and answers", len(pairs), len(pairs))

    chosen = np.empty(len(pairs), dtype=np.int64)
    rejected = np.empty(len(pairs), dtype=np.int64)
    prompt_of = np.empty(len(pairs), dtype=np.int64)
    for number, pair in enumerate(pairs):
        prompt_id = prompt_ids[prompt_keys[pair.prompt.key()]]
        prompt_of[number] = prompt_id
        chosen[number] = completion_ids[completion_index[(prompt_id, pair.chosen.key())]]
        rejected[number] = completion_ids[completion_index[(prompt_id, pair.rejected.key())]]
    chosen_first = rng.random(len(pairs)) < 0.5  # canonical order, drawn per pair
    first = np.where(chosen_first, chosen, rejected)
    second = np.where(chosen_first, rejected, chosen)
    truth_code = np.where(chosen_first, 0, 1)

    gold = config.gold_items
    truth: dict[int, str] = {}
    written = 0
    total = len(pairs)
    # Gold items first (every expert answers each), then task items (overlap experts each).
    batches = [(0, gold, True)] if gold else []
    batches += [
        (start + gold, end + gold, False) for start, end in _chunks(total - gold, _BATCH_ITEMS)
    ]
    for start, end, is_gold in batches:
        count = end - start
        purpose = "gold" if is_gold else "task"
        per_item = len(experts) if is_gold else config.overlap
        item_ids = _insert_returning(
            session,
            tables[ItemRow.__tablename__],
            [
                {
                    "project_id": project_id,
                    "kind": "comparison",
                    "purpose": purpose,
                    "prompt_id": int(prompt_of[i]),
                    "completion_ids": [int(first[i]), int(second[i])],
                    "gold_answer": {"winner": int(chosen[i])} if is_gold else None,
                    "judged": per_item,
                    "leased": 0,
                    "created_at": now,
                }
                for i in range(start, end)
            ],
        )
        if not is_gold:
            truth.update(
                (item_id, "a" if truth_code[i] == 0 else "b")
                for item_id, i in zip(item_ids, range(start, end), strict=True)
            )
        # Who judges what: every expert for gold, `overlap` distinct experts otherwise.
        if is_gold:
            who = np.tile(np.arange(len(experts)), count)
        else:
            who = np.argsort(rng.random((count, len(experts))), axis=1)[:, :per_item].ravel()
        local = np.repeat(np.arange(count), per_item)
        pair_index = local + start
        swapped = rng.random(len(who)) < 0.5
        labels = _labels(experts, who, truth_code[pair_index], swapped, rng)
        shown = np.where(swapped & (labels < 2), 1 - labels, labels)
        strength = STRENGTHS[rng.choice(3, size=len(who), p=[0.3, 0.45, 0.25])]
        seconds = np.array([e.median_seconds for e in experts])[who] * np.exp(
            rng.normal(0.0, 0.5, len(who))
        )
        orders = [
            [int(second[p]), int(first[p])] if s else [int(first[p]), int(second[p])]
            for p, s in zip(pair_index, swapped, strict=True)
        ]
        finished = [now - timedelta(seconds=float(s)) for s in seconds]
        assignment_ids = _insert_returning(
            session,
            tables[AssignmentRow.__tablename__],
            [
                {
                    "item_id": item_ids[local[j]],
                    "user_id": user_ids[who[j]],
                    "project_id": project_id,
                    "status": "submitted",
                    "shown_order": orders[j],
                    "leased_at": finished[j] - timedelta(seconds=float(seconds[j])),
                    "expires_at": finished[j] + timedelta(minutes=15),
                    "finished_at": finished[j],
                    "active_seconds": float(seconds[j]),
                    "judgment_kind": "comparison",
                    "correct": bool(labels[j] == truth_code[pair_index[j]]) if is_gold else None,
                }
                for j in range(len(who))
            ],
        )
        comparison_ids = _insert_returning(
            session,
            tables[ComparisonRow.__tablename__],
            [
                {
                    "project_id": project_id,
                    "prompt_id": int(prompt_of[pair_index[j]]),
                    "completion_a_id": orders[j][0],
                    "completion_b_id": orders[j][1],
                    "outcome": LABELS[shown[j]],
                    "strength": None if labels[j] >= 2 else strength[j],
                    "criteria": {},
                    "rationale": "",
                    "expert_id": user_ids[who[j]],
                    "source": None,
                    "created_at": finished[j],
                    "active_seconds": float(seconds[j]),
                    "shown": {
                        "assignment": assignment_ids[j],
                        "item": item_ids[local[j]],
                        "purpose": purpose,
                        "order": orders[j],
                    },
                }
                for j in range(len(who))
            ],
        )
        assignments = tables[AssignmentRow.__tablename__]
        session.execute(
            update(assignments)
            .where(assignments.c.id == bindparam("assignment"))
            .values(judgment_id=bindparam("judgment")),
            [
                {"assignment": a, "judgment": c}
                for a, c in zip(assignment_ids, comparison_ids, strict=True)
            ],
            execution_options={"synchronize_session": False},
        )
        written += len(who)
        say("judgments", end, total)
    return SimulatedProject(name, project_id, workers, truth, written)


@dataclass(frozen=True)
class SimulationResult:
    """How well consensus found the truth and detection found the bad experts."""

    pairs: int
    items: int
    judgments: int
    config: SimulationConfig
    consensus_accuracy: dict[str, float]
    detection: dict[str, float]
    bad_experts: int
    flagged: int
    experts: list[dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "consensus_accuracy": self.consensus_accuracy,
            "detection": self.detection,
            "bad_experts": self.bad_experts,
            "flagged": self.flagged,
            "pairs": self.pairs,
            "items": self.items,
            "judgments": self.judgments,
            "config": asdict(self.config),
            "experts": self.experts,
            "seconds": self.seconds,
        }


def _oracle_accuracy(comparisons: pd.DataFrame, truth: dict[int, str]) -> float:
    """Accuracy of the Bayes vote that knows each expert's real confusion matrix.

    The matrices are counted against the truth (with one added to every cell), so this is
    a ceiling for any aggregation of these judgments, not a method one could use.
    """
    frame = comparisons[comparisons["item"].isin(truth.keys())]
    true = frame["item"].map(truth)
    counts: dict[tuple[str, str, str], int] = Counter(
        zip(frame["worker"], true, frame["label"], strict=True)
    )
    totals: dict[tuple[str, str], int] = Counter(zip(frame["worker"], true, strict=True))
    score: dict[int, np.ndarray] = {}
    for item, worker, label in zip(frame["item"], frame["worker"], frame["label"], strict=True):
        evidence = score.setdefault(int(item), np.zeros(2))
        for side, answer in enumerate(("a", "b")):
            cell = counts.get((worker, answer, label), 0) + 1
            evidence[side] += np.log(cell / (totals.get((worker, answer), 0) + 4))
    best = {item: ("a", "b")[int(np.argmax(evidence))] for item, evidence in score.items()}
    return _accuracy(best, truth)


def _accuracy(labels: dict[int, str], truth: dict[int, str]) -> float:
    """Share of the task items whose label is the truth (an item with no label is wrong)."""
    return sum(labels.get(item) == answer for item, answer in truth.items()) / len(truth)


def run_simulation(
    store: Store,
    *,
    pairs: list[PreferencePair],
    config: SimulationConfig,
    name: str = "simulation",
    bootstrap: int = 200,
    progress: Callable[[str, int, int], None] | None = None,
) -> SimulationResult:
    """Write the simulated judgments into `store`, analyse them, and score the result."""
    say = progress or (lambda _phase, _done, _total: None)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with store.session() as session:
        written = write_simulation(
            session, name=name, pairs=pairs, config=config, progress=progress
        )
    seconds["write"] = time.perf_counter() - started
    quality = analyse_project(
        store,
        project=name,
        bootstrap=bootstrap,
        seed=config.seed,
        progress=lambda message: say(message, 0, 0),
    )
    seconds.update(quality.seconds)
    analysis = quality.analysis
    flagged: dict[str, list[str]] = {}
    for flag in analysis.flags:
        flagged.setdefault(flag.worker, []).append(flag.kind)
    bad = {worker for worker, expert in written.workers.items() if expert.bad}
    hits = len(bad & set(flagged))
    trust = {e.worker: e.trust for e in analysis.experts}
    return SimulationResult(
        pairs=len(pairs),
        items=len(written.truth),
        judgments=written.judgments,
        config=config,
        consensus_accuracy={
            "majority": _accuracy({c.item: c.label for c in analysis.majority}, written.truth),
            "dawid_skene": _accuracy(
                {c.item: c.label for c in analysis.dawid_skene}, written.truth
            ),
            "oracle": _oracle_accuracy(quality.judgments.comparisons, written.truth),
        },
        detection={
            # With nobody flagged, nobody was flagged wrongly; recall tells what was missed.
            "precision": hits / len(flagged) if flagged else 1.0,
            "recall": hits / len(bad) if bad else 1.0,
        },
        bad_experts=len(bad),
        flagged=len(flagged),
        experts=[
            {
                "worker": worker,
                "handle": e.handle,
                "kind": e.kind,
                "accuracy": round(e.accuracy, 3),
                "flip_rate": round(e.flip_rate, 3),
                "median_seconds": round(e.median_seconds, 1),
                "flags": sorted(flagged.get(worker, [])),
                "trust": trust.get(worker),
            }
            for worker, e in written.workers.items()
        ],
        seconds=seconds,
    )
