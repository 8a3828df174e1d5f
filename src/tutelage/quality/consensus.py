"""Consensus labels per item: majority vote, Dawid-Skene, adjudication; Bradley-Terry scores.

Majority vote and Dawid-Skene are crowd-kit's. "tie" and "both_bad" are labels like any
other: they can win an item, and are never dropped.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse
from crowdkit.aggregation import DawidSkene, MajorityVote
from sklearn.linear_model import LogisticRegression

__all__ = [
    "LABELS",
    "Aggregate",
    "ConsensusLabel",
    "adjudicate",
    "bradley_terry",
    "dawid_skene",
    "judgment_ids_by_item",
    "majority_vote",
]

LABELS = ("a", "b", "tie", "both_bad")
"""Comparison outcomes in canonical order: "a" is the item's first completion."""


@dataclass(frozen=True)
class ConsensusLabel:
    """The final label of one item, how sure it is, which method made it and from what.

    `method` is "majority", "dawid_skene" or "adjudication"; `confidence` is the share of
    votes (majority), the posterior probability (Dawid-Skene) or 1.0 (adjudication).
    """

    item: int
    label: str
    confidence: float
    method: str
    judgment_ids: tuple[int, ...]


@dataclass(frozen=True)
class Aggregate:
    """One method's labels, with the probability of each label per item (items x LABELS).

    `confusion` (Dawid-Skene only) is indexed by (worker, given label) with a column per
    true label: the probability the worker gives that label when the truth is the column.
    """

    labels: list[ConsensusLabel]
    posterior: pd.DataFrame
    confusion: pd.DataFrame | None


def majority_vote(judgments: pd.DataFrame) -> Aggregate:
    """The most frequent label per item (`judgments`: judgment_id, item, worker, label)."""
    if judgments.empty:
        return _empty()
    with _quiet_crowdkit():
        posterior = MajorityVote().fit_predict_proba(_crowdkit_frame(judgments))
    return _aggregate(judgments, posterior, "majority", None)


def dawid_skene(judgments: pd.DataFrame, *, max_iterations: int = 100) -> Aggregate:
    """Labels weighted by each expert's estimated confusion matrix (Dawid and Skene, 1979).

    crowd-kit starts EM from the majority vote, so with most experts honest the classes
    keep their names, and an expert who swaps "a" and "b" gets a confusion matrix with
    the diagonal swapped: their answers are read inverted instead of outvoting the truth.
    """
    if judgments.empty:
        return _empty()
    model = DawidSkene(n_iter=max_iterations)
    with _quiet_crowdkit():
        model.fit(_crowdkit_frame(judgments))
    errors: pd.DataFrame | None = model.errors_
    assert errors is not None, "crowd-kit sets errors_ when fitting any judgment"
    confusion = errors.reindex(columns=list(LABELS), fill_value=0.0)
    return _aggregate(judgments, model.probas_, "dawid_skene", confusion)


def adjudicate(
    labels: list[ConsensusLabel],
    adjudications: dict[int, str],
    *,
    judgment_ids: dict[int, tuple[int, ...]] | None = None,
) -> list[ConsensusLabel]:
    """`labels` with each adjudicated item's label replaced by the reviewer's decision.

    An adjudicated item nobody else labelled is added, with `judgment_ids` of that item.
    """
    unknown = sorted(set(adjudications.values()) - set(LABELS))
    if unknown:
        raise ValueError(f"adjudicated labels must be one of {LABELS}, not {unknown}")
    ids = judgment_ids or {}
    result = [
        ConsensusLabel(c.item, adjudications[c.item], 1.0, "adjudication", c.judgment_ids)
        if c.item in adjudications
        else c
        for c in labels
    ]
    seen = {c.item for c in labels}
    result.extend(
        ConsensusLabel(item, label, 1.0, "adjudication", ids.get(item, ()))
        for item, label in sorted(adjudications.items())
        if item not in seen
    )
    return result


def bradley_terry(
    comparisons: pd.DataFrame,
    *,
    rankings: pd.DataFrame | None = None,
    prior_variance: float = 1.0,
) -> dict[int, float]:
    """Bradley-Terry strength of each completion: P(i beats j) = sigmoid(s_i - s_j).

    Comparisons use columns first, second, label; rankings an `order` list (best first),
    expanded to every pair it implies. A tie or "both bad" counts half a win each way.
    Strengths have a normal prior (mean 0, `prior_variance`), so they stay finite for a
    completion that always wins, and completions never compared with each other (different
    prompts) are each pulled to 0 rather than left undefined.
    """
    # Bradley-Terry is logistic regression on (e_i - e_j) without intercept; scikit-learn
    # fits it on a sparse design. crowd-kit's BradleyTerry builds a dense n x n win matrix
    # (400,000 completions would need terabytes), needs a connected comparison graph and
    # has no ties; its NoisyBradleyTerry took over five minutes on a million judgments.
    first, second, win = _pairs(comparisons, rankings)
    if len(first) == 0:
        return {}
    completions, codes = np.unique(np.concatenate([first, second]), return_inverse=True)
    n = len(first)
    # Each comparison enters once in each orientation with half its weight, so the fit has
    # no preferred orientation and always sees both classes; in each orientation a tie is
    # split into a win and a loss of a quarter weight each.
    forward = np.column_stack([codes[:n], codes[n:]])
    cols = np.concatenate([forward, forward, forward[:, ::-1], forward[:, ::-1]]).ravel()
    rows = np.repeat(np.arange(4 * n), 2)
    signs = np.tile([1.0, -1.0], 4 * n)
    design = scipy.sparse.csr_matrix((signs, (rows, cols)), shape=(4 * n, len(completions)))
    outcome = np.concatenate([np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)])
    weight = np.concatenate([win, 1.0 - win, 1.0 - win, win]) / 2
    keep = weight > 0
    model = LogisticRegression(
        C=prior_variance, fit_intercept=False, solver="lbfgs", tol=1e-10, max_iter=1000
    )
    model.fit(design[keep], outcome[keep], sample_weight=weight[keep])
    return dict(zip(completions.tolist(), model.coef_[0].tolist(), strict=True))


def _pairs(
    comparisons: pd.DataFrame, rankings: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, share of the win that went to first) for every pairwise outcome."""
    label = comparisons["label"].to_numpy()
    win = np.select([label == "a", label == "b"], [1.0, 0.0], default=0.5)
    first = [comparisons["first"].to_numpy(dtype=np.int64)]
    second = [comparisons["second"].to_numpy(dtype=np.int64)]
    wins = [win]
    if rankings is not None and not rankings.empty:
        ranked = [pair for order in rankings["order"] for pair in itertools.combinations(order, 2)]
        if ranked:
            pairs = np.asarray(ranked, dtype=np.int64)
            first.append(pairs[:, 0])
            second.append(pairs[:, 1])
            wins.append(np.ones(len(pairs)))
    return np.concatenate(first), np.concatenate(second), np.concatenate(wins)


def _aggregate(
    judgments: pd.DataFrame,
    posterior: pd.DataFrame,
    method: str,
    confusion: pd.DataFrame | None,
) -> Aggregate:
    posterior = posterior.reindex(columns=list(LABELS), fill_value=0.0).astype(float)
    posterior.columns = pd.Index(list(LABELS))
    # The first label in LABELS order wins an exact tie of votes or probabilities.
    best = posterior.to_numpy().argmax(axis=1)
    confidence = posterior.to_numpy().max(axis=1)
    ids = judgment_ids_by_item(judgments)
    labels = [
        ConsensusLabel(int(item), LABELS[b], float(c), method, ids[item])
        for item, b, c in zip(
            posterior.index.tolist(), best.tolist(), confidence.tolist(), strict=True
        )
    ]
    return Aggregate(labels, posterior, confusion)


def judgment_ids_by_item(judgments: pd.DataFrame) -> dict[int, tuple[int, ...]]:
    """The ids of each item's judgments, in id order."""
    if judgments.empty:
        return {}
    ordered = judgments.sort_values(["item", "judgment_id"], kind="stable")
    items = ordered["item"].to_numpy()
    starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
    groups = np.split(ordered["judgment_id"].to_numpy(), starts[1:])
    return {int(items[s]): tuple(g.tolist()) for s, g in zip(starts, groups, strict=True)}


def _crowdkit_frame(judgments: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": judgments["item"].to_numpy(),
            "worker": judgments["worker"].to_numpy(),
            "label": judgments["label"].to_numpy(),
        }
    )


def _empty() -> Aggregate:
    return Aggregate([], pd.DataFrame(columns=list(LABELS), dtype=float), None)


@contextmanager
def _quiet_crowdkit() -> Iterator[None]:
    # crowd-kit 1.4 calls pandas with arguments pandas 3 deprecates (inplace=, copy=);
    # the warnings are about crowd-kit's code, not ours.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"crowdkit\.")
        yield
