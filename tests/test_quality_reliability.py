"""Reliability of experts, their trust and reasons, and the flags on bad experts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tutelage.quality.consensus import dawid_skene, majority_vote
from tutelage.quality.detection import FLAG_KINDS, expert_flags
from tutelage.quality.reliability import expert_reliability, worker_evidence

HONEST = [f"honest-{i}" for i in range(8)]


def crowd(seed: int = 0, items: int = 240) -> pd.DataFrame:
    """Eight honest experts (90% right, 60 s), and one each of: a flipper who swaps a and b,
    an expert who always picks the answer shown first, one who answers at random, and an
    honest one who takes 5 s. Each item is judged by four of them; truth is a or b."""
    rng = np.random.default_rng(seed)
    workers = [*HONEST, "flipper", "always-first", "random", "hasty"]
    truth = rng.integers(0, 2, items)
    rows = []
    for item, answer in enumerate(truth):
        for worker in rng.choice(workers, 4, replace=False):
            swapped = bool(rng.random() < 0.5)
            given = answer if rng.random() < 0.9 else 1 - answer
            if worker == "flipper":
                given = 1 - given
            elif worker == "always-first":
                given = 1 if swapped else 0  # canonical b is shown first when swapped
            elif worker == "random":
                given = int(rng.integers(0, 4))
            seconds = 5.0 if worker == "hasty" else 60.0 * rng.lognormal(0, 0.3)
            rows.append((item, worker, ("a", "b", "tie", "both_bad")[given], swapped, seconds))
    frame = pd.DataFrame(rows, columns=["item", "worker", "label", "swapped", "active_seconds"])
    frame.insert(0, "judgment_id", range(len(frame)))
    frame["strength"] = 2.0
    frame["first"], frame["second"] = 2 * frame["item"], 2 * frame["item"] + 1
    return frame


def test_each_kind_of_bad_expert_gets_its_flag_and_honest_ones_none() -> None:
    # The random expert escapes its test by chance about one time in a hundred (the
    # test's alpha), so the claim is checked over five crowds rather than one.
    expected = {
        ("flipper", "inverted"),
        ("always-first", "position_bias"),
        ("random", "random"),
        ("hasty", "too_fast"),
    }
    found = []
    for seed in range(5):
        frame = crowd(seed)
        flags = expert_flags(worker_evidence(frame, dawid_skene(frame)))
        assert all(f.kind in FLAG_KINDS and f.evidence for f in flags)
        assert not {f.worker for f in flags} & set(HONEST)
        found.append({(f.worker, f.kind) for f in flags})

    for flag in expected:
        assert sum(flag in kinds for kinds in found) >= 4, flag


def test_flipper_is_flagged_inverted_with_the_swapped_answers_as_evidence() -> None:
    frame = crowd(seed=1)

    flags = expert_flags(worker_evidence(frame, dawid_skene(frame)))

    inverted = [f for f in flags if f.worker == "flipper"]
    assert [f.kind for f in inverted] == ["inverted"]
    assert "answers b on" in inverted[0].evidence


def test_flipper_who_passed_gold_still_has_low_trust() -> None:
    frame = crowd()
    gold = {"flipper": (10, 10), "honest-0": (10, 9)}

    experts = {
        e.worker: expert_reliability(e)
        for e in worker_evidence(frame, dawid_skene(frame), gold=gold)
    }

    assert experts["flipper"].gold_accuracy == 1.0
    assert experts["honest-0"].gold_accuracy == pytest.approx(0.9)
    assert experts["flipper"].trust < 0.2 < 0.6 < experts["honest-0"].trust
    confusion = experts["flipper"].confusion
    assert confusion["a"]["b"] > confusion["a"]["a"]
    assert confusion["b"]["a"] > confusion["b"]["b"]


def test_trust_is_bounded_and_always_explained() -> None:
    frame = crowd()

    experts = [expert_reliability(e) for e in worker_evidence(frame, majority_vote(frame))]

    assert len(experts) == 12
    for expert in experts:
        assert 0.0 <= expert.trust <= 1.0
        assert expert.reasons and all(isinstance(r, str) and r for r in expert.reasons)
        assert any(r.startswith("trust ") for r in expert.reasons)


def test_always_first_expert_chose_the_shown_first_answer_throughout() -> None:
    frame = crowd()

    experts = {e.worker: expert_reliability(e) for e in worker_evidence(frame, dawid_skene(frame))}

    biased = experts["always-first"]
    assert biased.position_a_rate == 1.0
    assert biased.position_p_value is not None and biased.position_p_value < 1e-6
    honest_rate = experts["honest-0"].position_a_rate
    assert honest_rate is not None and 0.3 < honest_rate < 0.7


def test_speed_is_measured_against_the_project() -> None:
    frame = crowd()

    experts = {e.worker: expert_reliability(e) for e in worker_evidence(frame, dawid_skene(frame))}

    assert experts["hasty"].median_seconds == 5.0
    assert experts["hasty"].speed_ratio is not None and experts["hasty"].speed_ratio < 0.25
    assert experts["honest-0"].speed_ratio == pytest.approx(1.0, abs=0.3)


def test_agreement_leaves_the_expert_out_of_the_consensus() -> None:
    # Item 1: w, x, y answer a and z answers b. Against the others' majority, x agrees
    # (w, y, z: a, a, b) and z disagrees (w, x, y: a). Item 2: x alone, nothing to compare.
    frame = pd.DataFrame(
        {
            "judgment_id": [1, 2, 3, 4, 5],
            "item": [1, 1, 1, 1, 2],
            "worker": ["w", "x", "y", "z", "x"],
            "label": ["a", "a", "a", "b", "b"],
            "swapped": [False, True, False, True, False],
            "active_seconds": [30.0] * 5,
        }
    )

    evidence = {e.worker: e for e in worker_evidence(frame, majority_vote(frame))}

    assert (evidence["x"].compared, evidence["x"].agreed) == (1, 1)
    assert (evidence["z"].compared, evidence["z"].agreed) == (1, 0)
    assert evidence["x"].judgments == 2


def test_excluded_expert_is_scored_against_a_consensus_without_them() -> None:
    frame = crowd()
    kept = frame[frame["worker"] != "flipper"]

    evidence = worker_evidence(frame, dawid_skene(kept), excluded=frozenset({"flipper"}))

    flipper = next(e for e in evidence if e.worker == "flipper")
    assert flipper.excluded
    assert flipper.compared == flipper.judgments
    assert "excluded from agreement and consensus" in expert_reliability(flipper).reasons
    assert any(f.kind == "inverted" for f in expert_flags([flipper]))


def test_straightlining_counts_rubric_judgments_with_one_score_throughout() -> None:
    frame = crowd()
    scores = pd.DataFrame(
        {
            "judgment_id": [1, 1, 1, 2, 2, 2, 3, 3, 4, 4],
            "item": [1, 1, 1, 2, 2, 2, 3, 3, 4, 4],
            "worker": ["honest-0"] * 6 + ["honest-1"] * 4,
            "criterion": ["accuracy", "clarity", "safety"] * 2 + ["accuracy", "clarity"] * 2,
            # honest-0: 4 4 4 (flat), 4 NaN 4 (flat once the missing score is skipped);
            # honest-1: 2 5, 3 3 (flat).
            "score": [4.0, 4.0, 4.0, 4.0, np.nan, 4.0, 2.0, 5.0, 3.0, 3.0],
        }
    )

    experts = {
        e.worker: expert_reliability(e)
        for e in worker_evidence(frame, dawid_skene(frame), scores=scores)
    }

    assert experts["honest-0"].straightlining == 1.0
    assert experts["honest-1"].straightlining == 0.5
    assert experts["honest-2"].straightlining is None


def test_an_imported_source_with_no_time_or_order_is_not_flagged_for_them() -> None:
    # A data set's own labels: always "a", never swapped, no active time recorded.
    frame = crowd()
    source = frame[frame["worker"] == "honest-0"].assign(
        worker="source:hh-rlhf", label="a", swapped=False, active_seconds=0.0
    )
    frame = pd.concat([frame, source.assign(judgment_id=source["judgment_id"] + 10_000)])

    evidence = [e for e in worker_evidence(frame, dawid_skene(frame)) if e.worker.startswith("s")]

    assert evidence[0].chose_shown_first is None and evidence[0].median_seconds is None
    assert {f.kind for f in expert_flags(evidence)} <= {"random"}
