"""analyse(): the whole quality pass over one project's judgments."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import tutelage.quality
from tutelage.quality import analyse

HONEST = [f"expert:{i}" for i in range(6)]


def project(seed: int = 0, items: int = 150) -> pd.DataFrame:
    """Six honest experts (90% right) and a flipper; three judge each item."""
    return judged(seed, items)[0]


def judged(seed: int, items: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The judgments of `project` and the true label (0 a, 1 b) of each item."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, items)
    rows = []
    for item, answer in enumerate(truth):
        for worker in rng.choice([*HONEST, "expert:flipper"], 3, replace=False):
            given = answer if rng.random() < 0.9 else 1 - answer
            if worker == "expert:flipper":
                given = 1 - given
            rows.append((item, worker, "ab"[given], bool(rng.random() < 0.5)))
    frame = pd.DataFrame(rows, columns=["item", "worker", "label", "swapped"])
    frame.insert(0, "judgment_id", range(100, 100 + len(frame)))
    frame["strength"] = rng.integers(1, 4, len(frame)).astype(float)
    frame["active_seconds"] = 40.0 * rng.lognormal(0, 0.3, len(frame))
    frame["first"], frame["second"] = 2 * frame["item"], 2 * frame["item"] + 1
    return frame, truth


def test_analysis_of_a_project_with_every_input() -> None:
    comparisons = project()
    scores = pd.DataFrame(
        {
            "judgment_id": [1, 1, 2, 2, 3, 3],
            "item": [500, 500, 500, 500, 501, 501],
            "worker": ["expert:0", "expert:0", "expert:1", "expert:1", "expert:0", "expert:0"],
            "criterion": ["accuracy", "clarity"] * 3,
            "score": [4.0, 4.0, 4.0, 3.0, 2.0, np.nan],
        }
    )
    rankings = pd.DataFrame(
        {"judgment_id": [7], "item": [600], "worker": ["expert:2"], "order": [[9001, 9000]]}
    )
    steps: list[str] = []

    result = analyse(
        comparisons,
        scores=scores,
        criteria_levels={"accuracy": "ordinal", "clarity": "ordinal"},
        rankings=rankings,
        gold={"expert:flipper": (8, 8)},
        adjudications={0: "both_bad"},
        excluded=frozenset({"expert:5"}),
        bootstrap=50,
        progress=steps.append,
    )

    assert result.method == "dawid_skene"
    assert {"outcome_alpha", "strength_alpha", "fleiss_kappa", "criterion:accuracy"} <= set(
        result.agreement.overall
    )
    first = next(c for c in result.consensus if c.item == 0)
    assert (first.label, first.method, first.confidence) == ("both_bad", "adjudication", 1.0)
    assert 0 not in result.low_agreement_items(1.01)
    assert result.item_confidence(1) == next(c for c in result.consensus if c.item == 1).confidence
    assert {c.method for c in result.consensus} == {"dawid_skene", "adjudication"}
    assert result.bradley_terry[9001] > result.bradley_terry[9000]

    excluded_ids = set(comparisons.loc[comparisons["worker"] == "expert:5", "judgment_id"])
    assert not any(excluded_ids & set(c.judgment_ids) for c in result.consensus)
    experts = {e.worker: e for e in result.experts}
    assert experts["expert:5"].excluded and not experts["expert:0"].excluded
    assert experts["expert:flipper"].gold_accuracy == 1.0
    assert ("expert:flipper", "inverted") in {(f.worker, f.kind) for f in result.flags}
    assert steps[0] == "agreement" and len(steps) >= 4

    text = json.dumps(result.to_json(), allow_nan=False)
    assert json.loads(text)["consensus"][0]["judgment_ids"]


def test_dawid_skene_consensus_beats_majority_vote_with_a_flipper() -> None:
    comparisons, truth = judged(seed=3, items=300)

    result = analyse(comparisons, bootstrap=0)

    def right(labels: list[tutelage.quality.ConsensusLabel]) -> float:
        return sum(c.label == "ab"[truth[c.item]] for c in labels) / len(truth)

    assert right(result.dawid_skene) > right(result.majority)
    assert right(result.dawid_skene) >= 0.95


def test_majority_method_makes_the_consensus_from_votes() -> None:
    result = analyse(project(), method="majority", bootstrap=0)

    assert {c.method for c in result.consensus} == {"majority"}
    assert result.consensus == result.majority


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="consensus method"):
        analyse(project(), method="average")


def test_labels_outside_the_four_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match="comparison labels"):
        analyse(project().assign(label="A"))


def test_one_judgment_per_item_gives_consensus_but_no_agreement() -> None:
    comparisons = project().drop_duplicates("item")

    result = analyse(comparisons, bootstrap=20)

    alpha = result.agreement.overall["outcome_alpha"]
    assert alpha.value is None and alpha.note is not None
    assert result.agreement.overall["fleiss_kappa"].value is None
    assert result.agreement.pairwise == []
    assert len(result.consensus) == comparisons["item"].nunique()
    assert all(e.consensus_agreement is None for e in result.experts)
    json.dumps(result.to_json(), allow_nan=False)


def test_identical_answers_leave_agreement_undefined_not_perfect() -> None:
    comparisons = project().assign(label="tie", strength=np.nan)

    result = analyse(comparisons, bootstrap=20)

    for name in ("outcome_alpha", "strength_alpha", "fleiss_kappa"):
        assert result.agreement.overall[name].value is None, name
    assert {c.label for c in result.consensus} == {"tie"}


def test_no_judgments_at_all() -> None:
    empty = project().iloc[0:0]

    result = analyse(empty, bootstrap=20)

    assert result.consensus == [] and result.experts == [] and result.flags == []
    assert result.agreement.overall["outcome_alpha"].value is None
    json.dumps(result.to_json(), allow_nan=False)


@pytest.mark.parametrize("method", ["dawid_skene", "majority"])
def test_every_judge_excluded_leaves_no_consensus_but_a_row_for_each(method: str) -> None:
    comparisons = project(items=20)
    everyone = frozenset(comparisons["worker"].unique())

    result = analyse(comparisons, excluded=everyone, method=method, bootstrap=20)

    assert result.consensus == []
    assert {e.worker for e in result.experts} == everyone
    assert all(e.consensus_agreement is None for e in result.experts)
    json.dumps(result.to_json(), allow_nan=False)


def test_public_names_exist() -> None:
    assert tutelage.quality.__all__
    for name in tutelage.quality.__all__:
        assert hasattr(tutelage.quality, name), name
