"""Reliability of each expert: the evidence about them, and a trust score with its reasons.

Agreement is measured against the consensus of the *other* experts on each item (leave
one out), so an expert's own vote never inflates it, which matters at an overlap of 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from tutelage.quality.consensus import LABELS, Aggregate

__all__ = [
    "SIGNIFICANCE",
    "ExpertReliability",
    "WorkerEvidence",
    "expert_reliability",
    "worker_evidence",
]

SIGNIFICANCE = 0.001
"""p-value below which a test's evidence counts against an expert (about 5% family-wise
over the ~50 tests of a 30-expert project)."""

_PRIOR_WEIGHT = 10
"""Pseudo-judgments of skill 0.5 that an expert's evidence is weighed against."""


@dataclass(frozen=True)
class ExpertReliability:
    """What the evidence says about one expert; `trust` in [0, 1] always comes with `reasons`.

    `confusion[true][given]` is the probability of answering `given` when the consensus
    says `true`. `position_a_rate` is the share of decisive answers that chose the answer
    shown first (as "A"); `speed_ratio` is the expert's median active seconds over the
    project's; `straightlining` the share of rubric judgments with one score throughout.
    """

    worker: str
    judgments: int
    excluded: bool
    gold_accuracy: float | None
    consensus_agreement: float | None
    confusion: dict[str, dict[str, float]]
    median_seconds: float | None
    speed_ratio: float | None
    position_a_rate: float | None
    position_p_value: float | None
    straightlining: float | None
    trust: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class WorkerEvidence:
    """The counts behind one expert's reliability and flags.

    `compared` judgments had a consensus of other experts; `agreed` of them matched it,
    where answering at random with the expert's own label mix would match `chance`.
    `decisive` judgments chose a or b, `chose_shown_first` of them the answer shown as A
    (None when the expert never saw both orders, so order cannot be told from content).
    """

    worker: str
    judgments: int
    excluded: bool
    compared: int
    agreed: int
    chance: float | None
    confusion: dict[str, dict[str, float]]
    gold_answered: int
    gold_correct: int
    median_seconds: float | None
    project_median_seconds: float | None
    decisive: int
    chose_shown_first: int | None
    rubric_judgments: int
    straightlined: int


def worker_evidence(
    comparisons: pd.DataFrame,
    consensus: Aggregate,
    *,
    excluded: frozenset[str] = frozenset(),
    scores: pd.DataFrame | None = None,
    gold: dict[str, tuple[int, int]] | None = None,
) -> list[WorkerEvidence]:
    """The evidence about every expert in `comparisons` (excluded ones too), by worker."""
    rows = comparisons.reset_index(drop=True)
    names = sorted(set(rows["worker"]) | (set(scores["worker"]) if scores is not None else set()))
    worker = pd.Categorical(rows["worker"], categories=names).codes.astype(np.int64)
    given = pd.Categorical(rows["label"], categories=list(LABELS)).codes.astype(np.int64)
    included = ~rows["worker"].isin(excluded).to_numpy()
    others = _leave_one_out(rows, consensus, included, given)
    top = others.max(axis=1, keepdims=True)
    compared = (others.sum(axis=1) > 0) & ((others == top).sum(axis=1) == 1)
    expected = others.argmax(axis=1)

    def per_worker(counted: np.ndarray) -> np.ndarray:
        return np.bincount(worker, weights=counted.astype(float), minlength=len(names))

    n_compared = per_worker(compared)
    agreed = per_worker(compared & (expected == given))
    own_mix = np.column_stack([per_worker(compared & (given == k)) for k in range(len(LABELS))])
    their_mix = np.column_stack(
        [per_worker(compared & (expected == k)) for k in range(len(LABELS))]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        chance = (own_mix * their_mix).sum(axis=1) / n_compared**2
    confusion = _confusion(rows, consensus, worker, given, len(names))

    seconds = rows["active_seconds"].astype(float).where(lambda s: s > 0)
    median_seconds = seconds.groupby(worker).median().reindex(range(len(names)))
    project_median = seconds[included].median()

    decisive = (given == 0) | (given == 1)
    swapped = rows["swapped"].to_numpy(dtype=bool)
    # canonical "a" was shown first unless the pair was swapped
    shown_first = decisive & ((given == 0) != swapped)
    saw_both = (per_worker(decisive & swapped) > 0) & (per_worker(decisive & ~swapped) > 0)
    n_decisive = per_worker(decisive)
    n_shown_first = per_worker(shown_first)
    n_judgments = per_worker(np.ones(len(rows)))
    straight = _straightlining(scores, names)
    evidence = []
    for w, name in enumerate(names):
        answered, correct = (gold or {}).get(name, (0, 0))
        median = median_seconds.iloc[w]
        evidence.append(
            WorkerEvidence(
                worker=name,
                judgments=int(n_judgments[w]),
                excluded=name in excluded,
                compared=int(n_compared[w]),
                agreed=int(agreed[w]),
                chance=float(chance[w]) if n_compared[w] else None,
                confusion=confusion[w],
                gold_answered=int(answered),
                gold_correct=int(correct),
                median_seconds=None if pd.isna(median) else float(median),
                project_median_seconds=None if pd.isna(project_median) else float(project_median),
                decisive=int(n_decisive[w]),
                chose_shown_first=int(n_shown_first[w]) if saw_both[w] else None,
                rubric_judgments=straight[w][0],
                straightlined=straight[w][1],
            )
        )
    return evidence


def _leave_one_out(
    rows: pd.DataFrame, consensus: Aggregate, included: np.ndarray, given: np.ndarray
) -> np.ndarray:
    """Per judgment, the consensus of the item's other included judgments (rows x LABELS).

    All zeros where no other included judgment exists. For Dawid-Skene this is the
    posterior without the judgment's own likelihood term; for majority vote, the others'
    votes.
    """
    position = consensus.posterior.index.get_indexer(rows["item"])
    usable = included & (position >= 0) & (given >= 0)
    n_items = len(consensus.posterior)
    if n_items == 0:  # every judgment left out (e.g. the only expert excluded)
        return np.zeros((len(rows), len(LABELS)))
    if consensus.confusion is None:
        own = np.zeros((len(rows), len(LABELS)))
        own[np.flatnonzero(usable), given[usable]] = 1.0
        totals = _sum_by(position[usable], own[usable], n_items)
        votes = totals[np.maximum(position, 0)] - own
        return np.where((position >= 0)[:, None], votes, 0.0)
    matrix = consensus.confusion
    keys = pd.MultiIndex.from_arrays([rows["worker"], rows["label"]])
    row = matrix.index.get_indexer(keys)
    usable &= row >= 0
    own = np.zeros((len(rows), len(LABELS)))
    own[usable] = np.log(np.clip(matrix.to_numpy()[row[usable]], 1e-10, None))
    prior = np.log(np.clip(consensus.posterior.to_numpy().mean(axis=0), 1e-10, None))
    totals = prior + _sum_by(position[usable], own[usable], n_items)
    count = np.bincount(position[usable], minlength=n_items)
    log_odds = totals[np.maximum(position, 0)] - own
    posterior = np.exp(log_odds - log_odds.max(axis=1, keepdims=True))
    posterior /= posterior.sum(axis=1, keepdims=True)
    has_others = (position >= 0) & (count[np.maximum(position, 0)] - usable > 0)
    return np.where(has_others[:, None], posterior, 0.0)


def _sum_by(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    return np.column_stack(
        [
            np.bincount(groups, weights=values[:, k], minlength=n_groups)
            for k in range(values.shape[1])
        ]
    )


def _confusion(
    rows: pd.DataFrame, consensus: Aggregate, worker: np.ndarray, given: np.ndarray, n: int
) -> list[dict[str, dict[str, float]]]:
    """P(given | true) per worker, weighting each judgment by the consensus posterior.

    For a worker in a Dawid-Skene fit this is the fit's own last M-step; an excluded
    worker is scored the same way against a consensus they did not shape.
    """
    position = consensus.posterior.index.get_indexer(rows["item"])
    usable = (position >= 0) & (given >= 0)
    truth = consensus.posterior.to_numpy()[position[usable]]
    mass = np.zeros((n, len(LABELS), len(LABELS)))  # worker x true x given
    for g in range(len(LABELS)):
        chose = given[usable] == g
        for t in range(len(LABELS)):
            mass[:, t, g] = np.bincount(worker[usable][chose], weights=truth[chose, t], minlength=n)
    result = []
    for w in range(n):
        per_truth = mass[w].sum(axis=1)
        result.append(
            {
                LABELS[t]: {
                    LABELS[g]: float(mass[w, t, g] / per_truth[t]) for g in range(len(LABELS))
                }
                for t in range(len(LABELS))
                if per_truth[t] > 0
            }
        )
    return result


def _straightlining(scores: pd.DataFrame | None, names: list[str]) -> list[tuple[int, int]]:
    """Per worker: (rubric judgments with two or more scores, how many had one score throughout)."""
    if scores is None or scores.empty:
        return [(0, 0)] * len(names)
    scored = scores[scores["score"].notna()]
    per_judgment = scored.groupby("judgment_id").agg(
        worker=("worker", "first"), n=("score", "size"), distinct=("score", "nunique")
    )
    per_judgment = per_judgment[per_judgment["n"] >= 2]
    counts = per_judgment.groupby("worker").agg(
        total=("n", "size"), flat=("distinct", lambda d: int((d == 1).sum()))
    )
    return [
        (int(counts.at[name, "total"]), int(counts.at[name, "flat"]))
        if name in counts.index
        else (0, 0)
        for name in names
    ]


def expert_reliability(evidence: WorkerEvidence) -> ExpertReliability:
    """Reliability and trust of one expert, with the reasons behind the trust."""
    e = evidence
    reasons: list[str] = []
    skill_weight, skill_sum = float(_PRIOR_WEIGHT), 0.5 * _PRIOR_WEIGHT
    agreement = e.agreed / e.compared if e.compared else None
    if agreement is not None and e.chance is not None:
        kappa = (agreement - e.chance) / (1 - e.chance) if e.chance < 1 else 0.0
        skill_sum += e.compared * min(max(kappa, 0.0), 1.0)
        skill_weight += e.compared
        reasons.append(
            f"agrees with the other experts' consensus on {agreement:.0%} of {e.compared} "
            f"judgments (chance: {e.chance:.0%})"
        )
    else:
        reasons.append("no item shared with other experts, so no agreement to measure")
    gold_accuracy = e.gold_correct / e.gold_answered if e.gold_answered else None
    if gold_accuracy is not None:
        # chance-corrected like the agreement above: guessing among four answers gets 25%
        chance = 1 / len(LABELS)
        skill_sum += e.gold_answered * max(gold_accuracy - chance, 0.0) / (1 - chance)
        skill_weight += e.gold_answered
        reasons.append(f"gold: {e.gold_correct} of {e.gold_answered} correct")
    skill = skill_sum / skill_weight

    speed_ratio = None
    speed = 1.0
    if e.median_seconds is not None and e.project_median_seconds:
        speed_ratio = e.median_seconds / e.project_median_seconds
        speed = min(1.0, speed_ratio / 0.5)  # half the usual time or more is no concern
        reasons.append(
            f"median {e.median_seconds:.0f} s per judgment, {speed_ratio:.2f}x the project's "
            f"{e.project_median_seconds:.0f} s"
        )
    position_rate = position_p = None
    position = 1.0
    if e.chose_shown_first is not None and e.decisive:
        position_rate = e.chose_shown_first / e.decisive
        position_p = float(binomtest(e.chose_shown_first, e.decisive, 0.5).pvalue)
        if position_p < SIGNIFICANCE:
            position = 1 - 2 * abs(position_rate - 0.5)
        reasons.append(
            f"chose the answer shown first in {position_rate:.0%} of {e.decisive} decisive "
            f"judgments (p = {position_p:.2g} against 50%)"
        )
    straightlining = None
    straight = 1.0
    if e.rubric_judgments:
        straightlining = e.straightlined / e.rubric_judgments
        straight = 1 - straightlining / 2
        reasons.append(
            f"gave every criterion the same score in {e.straightlined} of "
            f"{e.rubric_judgments} rubric judgments"
        )
    trust = min(max(skill * speed * position * straight, 0.0), 1.0)
    reasons.append(
        f"trust {trust:.2f} = skill {skill:.2f} x speed {speed:.2f} x position {position:.2f} "
        f"x rubric {straight:.2f}"
    )
    if e.excluded:
        reasons.append("excluded from agreement and consensus")
    return ExpertReliability(
        worker=e.worker,
        judgments=e.judgments,
        excluded=e.excluded,
        gold_accuracy=gold_accuracy,
        consensus_agreement=agreement,
        confusion=e.confusion,
        median_seconds=e.median_seconds,
        speed_ratio=speed_ratio,
        position_a_rate=position_rate,
        position_p_value=position_p,
        straightlining=straightlining,
        trust=trust,
        reasons=tuple(reasons),
    )
