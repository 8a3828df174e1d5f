"""Consensus: majority vote, Dawid-Skene, adjudication and Bradley-Terry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import BradleyTerry

from tutelage.quality.consensus import (
    adjudicate,
    bradley_terry,
    dawid_skene,
    majority_vote,
)


def judgments(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    """(item, worker, label) rows; item i compares completions 10 i (a) and 10 i + 1 (b)."""
    return pd.DataFrame(
        {
            "judgment_id": range(1, len(rows) + 1),
            "item": [r[0] for r in rows],
            "worker": [r[1] for r in rows],
            "label": [r[2] for r in rows],
            "first": [10 * r[0] for r in rows],
            "second": [10 * r[0] + 1 for r in rows],
        }
    )


def test_majority_keeps_ties_and_both_bad_as_labels() -> None:
    frame = judgments(
        [
            (1, "x", "tie"),
            (1, "y", "tie"),
            (1, "z", "a"),
            (2, "x", "both_bad"),
            (2, "y", "both_bad"),
            (2, "z", "both_bad"),
        ]
    )

    labels = {c.item: c for c in majority_vote(frame).labels}

    assert labels[1].label == "tie"
    assert labels[1].confidence == pytest.approx(2 / 3)
    assert labels[1].method == "majority"
    assert labels[1].judgment_ids == (1, 2, 3)
    assert labels[2].label == "both_bad"
    assert labels[2].confidence == pytest.approx(1.0)


def test_dawid_skene_keeps_ties_and_both_bad_as_labels() -> None:
    rows = []
    for item in range(12):
        label = ["a", "b", "tie", "both_bad"][item % 4]
        rows += [(item, worker, label) for worker in ("x", "y", "z")]

    labels = dawid_skene(judgments(rows)).labels

    assert [c.label for c in labels] == [["a", "b", "tie", "both_bad"][i % 4] for i in range(12)]
    assert all(c.method == "dawid_skene" and c.confidence > 0.9 for c in labels)


def test_dawid_skene_reads_a_flipper_inverted_where_majority_follows_them() -> None:
    # Six honest experts answer the truth; two flippers always answer the other side.
    # On the items where only one honest expert meets both flippers, majority vote
    # follows the flippers; Dawid-Skene learns the flippers' swapped confusion matrix
    # and counts their answers as evidence for the truth.
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 240)
    honest = [f"honest-{i}" for i in range(6)]
    rows = []
    for item, answer in enumerate(truth):
        if item < 40:  # one honest expert against both flippers
            panel = [honest[item % 6], "flipper-1", "flipper-2"]
        else:
            panel = [*rng.choice(honest, 2, replace=False).tolist(), f"flipper-{item % 2 + 1}"]
        for worker in panel:
            given = 1 - answer if worker.startswith("flipper") else answer
            rows.append((item, worker, "ab"[given]))
    frame = judgments(rows)

    model = dawid_skene(frame)
    vote = majority_vote(frame)

    expected = ["ab"[t] for t in truth]
    assert [c.label for c in model.labels] == expected
    assert sum(c.label != e for c, e in zip(vote.labels, expected, strict=True)) == 40
    assert model.confusion is not None
    flipper = model.confusion.loc["flipper-1"]
    assert flipper.loc["b", "a"] > 0.9  # answers b when the truth is a
    assert flipper.loc["a", "b"] > 0.9


def test_adjudication_overrides_any_method() -> None:
    frame = judgments([(1, "x", "a"), (1, "y", "a"), (2, "x", "b"), (2, "y", "b")])
    labels = dawid_skene(frame).labels

    final = adjudicate(labels, {1: "both_bad", 3: "tie"}, judgment_ids={3: (9,)})

    by_item = {c.item: c for c in final}
    assert by_item[1].label == "both_bad"
    assert by_item[1].method == "adjudication"
    assert by_item[1].confidence == 1.0
    assert by_item[1].judgment_ids == (1, 2)
    assert by_item[2].method == "dawid_skene"
    assert by_item[3].label == "tie" and by_item[3].judgment_ids == (9,)


def test_adjudication_to_an_unknown_label_is_refused() -> None:
    with pytest.raises(ValueError, match="adjudicated labels"):
        adjudicate([], {1: "A"})


def test_bradley_terry_ranks_a_clearly_preferred_completion_first() -> None:
    # Three completions of one prompt, compared pairwise by several experts:
    # 1 beats 2 and 3 every time, 2 beats 3 three times out of four.
    rows = []
    for worker in ("x", "y", "z", "w"):
        rows.append((1, 2, worker, "a"))  # 1 vs 2: 1 wins
        rows.append((1, 3, worker, "a"))  # 1 vs 3: 1 wins
        rows.append((2, 3, worker, "b" if worker == "w" else "a"))
    frame = pd.DataFrame(rows, columns=["first", "second", "worker", "label"])

    scores = bradley_terry(frame)

    assert sorted(scores, key=scores.__getitem__, reverse=True) == [1, 2, 3]
    # crowd-kit's classic Bradley-Terry (fine on a graph this small) orders them the same.
    reference = BradleyTerry(n_iter=100).fit_predict(
        frame.assign(
            left=frame["first"],
            right=frame["second"],
            label=np.where(frame["label"] == "a", frame["first"], frame["second"]),
        )
    )
    assert reference.sort_values(ascending=False).index.tolist() == [1, 2, 3]


def test_bradley_terry_counts_a_tie_as_half_a_win_each_way() -> None:
    frame = pd.DataFrame(
        {"first": [1, 1, 1], "second": [2, 2, 2], "label": ["tie", "both_bad", "tie"]}
    )

    scores = bradley_terry(frame)

    assert scores[1] == pytest.approx(scores[2], abs=1e-6)


def test_bradley_terry_expands_rankings_into_pairs() -> None:
    rankings = pd.DataFrame({"worker": ["x", "y"], "order": [[7, 5, 6], [7, 5, 6]]})
    no_comparisons = pd.DataFrame({"first": [], "second": [], "label": []})

    scores = bradley_terry(no_comparisons, rankings=rankings)

    assert sorted(scores, key=scores.__getitem__, reverse=True) == [7, 5, 6]
    assert all(np.isfinite(list(scores.values())))


def test_empty_judgments_give_no_labels() -> None:
    empty = judgments([])

    assert majority_vote(empty).labels == []
    assert dawid_skene(empty).labels == []
    assert bradley_terry(empty) == {}
