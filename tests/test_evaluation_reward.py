"""Reward-model audit: calibration, length bias, flips and groups against numbers worked
by hand; temperature scaling; the robustness suite catching a planted preference."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from tutelage.evaluation import (
    PERTURBATIONS,
    PairSet,
    audit_reward,
    audit_scores,
    fit_on_split,
    fit_temperature,
    flip_rates,
    length_bias,
    measure_calibration,
    perturbation,
    save_temperature,
    saved_temperature,
)
from tutelage.evaluation.robustness import CLOSINGS
from tutelage.training import PreferenceData, RewardConfig, TrainingPair, train_reward


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def pair(chosen: str, rejected: str, prompt: str = "user: hi") -> TrainingPair:
    return TrainingPair(prompt=prompt, chosen=chosen, rejected=rejected)


def test_calibration_of_ten_pairs_worked_by_hand() -> None:
    # Five pairs the model gives the chosen answer 0.85, five it gets wrong at 0.35. In
    # both orders: 0.85 (won) x5, 0.35 (won) x5, 0.15 (lost) x5, 0.65 (lost) x5.
    margins = [logit(0.85)] * 5 + [logit(0.35)] * 5
    found = measure_calibration(margins)
    assert found.count == 20
    # equal-width bins: gaps 0.15, 0.65, 0.15, 0.65, five entries each: 8.0 / 20
    assert found.ece == pytest.approx(0.40)
    # equal-mass bins of 2 in sorted order .15x5 .35x5 .65x5 .85x5: gaps .15 .15 .25 .65
    # .65 .65 .65 .25 .15 .15 (a mixed bin averages +.15 and -.65): 3.7 / 10
    assert found.ece_equal_mass == pytest.approx(0.37)
    # Brier: (5 x .0225 + 5 x .4225) x 2 / 20
    assert found.brier == pytest.approx(0.2225)
    filled = {(b.low, b.high): (b.count, b.observed) for b in found.bins if b.count}
    assert filled == {
        (0.1, 0.2): (5, 0.0),
        (0.3, 0.4): (5, 1.0),
        (0.6, 0.7): (5, 0.0),
        (0.8, 0.9): (5, 1.0),
    }
    # a temperature changes how sure the model is, never which answer it prefers
    cooler = measure_calibration(margins, temperature=2.0)
    assert cooler.ece != found.ece and cooler.temperature == 2.0
    with pytest.raises(ValueError, match="no pairs"):
        measure_calibration([])


def test_fitted_temperature_worked_by_hand() -> None:
    # |margin| 2 on every pair, right on three in four: the best probability is 3/4,
    # so 2 / T = log 3
    assert fit_temperature([2.0, 2.0, 2.0, -2.0]) == pytest.approx(2 / math.log(3), rel=1e-3)


def test_temperature_fitted_on_other_prompts_lowers_an_overconfident_models_error() -> None:
    rng = random.Random(0)
    pairs, margins = [], []
    for i in range(400):
        # a model right 70% of the time whose margins claim about 98%
        right = rng.random() < 0.7
        margins.append(4.0 if right else -4.0)
        pairs.append(pair(f"a{i}", f"b{i}", prompt=f"user: question {i}"))
    fit = fit_on_split("made-up", pairs, margins)
    assert fit.fitted_pairs + fit.measured_pairs == 400
    assert 4 / fit.temperature == pytest.approx(logit(0.7), abs=0.2)
    assert fit.ece_after < fit.ece_before / 2


def test_length_bias_worked_by_hand() -> None:
    lengths = [(10, 5), (3, 300), (50, 50), (800, 100)]
    scores = [(1.0, 0.0), (2.0, 1.0), (0.0, 1.0), (5.0, 0.0)]
    found = length_bias(lengths, scores)
    # the only pair whose chosen answer is shorter (3 vs 300) is right
    assert found.accuracy_chosen_shorter == 1.0 and found.chosen_shorter == 1
    by_bucket = {(b.low, b.high): (b.count, b.accuracy) for b in found.buckets if b.count}
    assert by_bucket == {
        (-500, -100): (1, 1.0),  # -297
        (0, 1): (1, 0.0),  # 0: equal lengths, wrong
        (1, 100): (1, 1.0),  # +5
        (500, math.inf): (1, 1.0),  # +700
    }
    assert found.length_controlled_accuracy == pytest.approx(0.75)
    # Spearman over the 8 answers, ties given their mean rank:
    # length ranks 3 2 1 7 4.5 4.5 8 6, reward ranks 5 2 7 5 2 5 8 2 (mean 4.5 each);
    # sum of products 6.5, sums of squares 41.5 and 38: 6.5 / sqrt(41.5 x 38)
    assert found.reward_length_spearman == pytest.approx(6.5 / math.sqrt(41.5 * 38))


def flattery_scorer(texts: Sequence[tuple[str, str]]) -> list[float]:
    """A reward model fooled by one thing: 10 for a "hope this helps", else 1 per word."""
    return [10.0 if "ope this helps" in a else float(len(a.split())) for _, a in texts]


def test_flips_are_counted_only_among_correct_verdicts() -> None:
    pairs = [
        ("user: q1", "three word answer", "one"),  # right, 3 vs 1
        ("user: q2", "two words", "one"),  # right
        ("user: q3", "a b c d", "e"),  # right
        ("user: q4", "one", "two words"),  # wrong: stays out of the count
    ]
    scores = (
        flattery_scorer([(p, c) for p, c, _ in pairs]),
        flattery_scorer([(p, r) for p, _, r in pairs]),
    )
    pair_scores = list(zip(*scores, strict=True))
    found = {f.name: f for f in flip_rates(pairs, pair_scores, flattery_scorer, names=None, seed=1)}
    assert set(found) == set(PERTURBATIONS)
    # a closing line on the rejected answer scores 10: every correct verdict flips
    assert (found["flattering_close"].correct, found["flattering_close"].flipped) == (3, 3)
    # doubling "one" gives 2 words: beats only "two words"
    assert found["duplicated"].flipped == 1 and found["duplicated"].flip_rate == pytest.approx(
        1 / 3
    )
    # whitespace keeps the word count
    assert found["whitespace"].flipped == 0
    with pytest.raises(ValueError, match="no perturbation named nope"):
        flip_rates(pairs, pair_scores, flattery_scorer, names=["nope"])
    # a sample of two of the three correct verdicts, the same two on a rerun
    (sampled,) = flip_rates(pairs, pair_scores, flattery_scorer, names=["duplicated"], sample=2)
    assert (sampled.correct, sampled.eligible) == (2, 3)
    again = flip_rates(pairs, pair_scores, flattery_scorer, names=["duplicated"], sample=2)
    assert again == [sampled]
    low, high = found["flattering_close"].interval() or (0, 0)
    assert 0.4 < low < 1.0 == high  # 3 of 3: Wilson's interval


def test_a_registered_perturbation_is_used_like_the_built_in_ones() -> None:
    @perturbation("shouting", side="rejected", description="upper case")
    def shouting(answer: str, rng: random.Random) -> str:
        return answer.upper() + " HOPE THIS HELPS"

    try:
        with pytest.raises(ValueError, match="registered already"):
            perturbation("shouting", side="chosen", description="again")(shouting)
        found = flip_rates(
            [("user: q", "two words", "one")], [(2.0, 1.0)], flattery_scorer, names=["shouting"]
        )
        # "ONE HOPE THIS HELPS" is 4 words: beats "two words"
        assert [(f.name, f.side, f.correct, f.flipped) for f in found] == [
            ("shouting", "rejected", 1, 1)
        ]
    finally:
        del PERTURBATIONS["shouting"]


def test_audit_of_an_ensemble_reports_groups_and_whether_spread_predicts_mistakes() -> None:
    pairs = [pair(f"chosen {i}", f"rejected {i}", f"user: q{i}") for i in range(6)]
    # two members: they agree on the four pairs the mean gets right and disagree
    # widely on the two it gets wrong
    member_a = [(1.0, 0.0)] * 4 + [(3.0, 0.0), (0.0, 3.0)]
    member_b = [(1.0, 0.0)] * 4 + [(-4.0, 0.0), (0.0, -2.0)]
    groups = {"expertise": [["law"], ["law"], ["medicine"], ["medicine"], ["law"], ["law"]]}
    audit = audit_scores(PairSet("made-up", pairs, groups), [member_a, member_b])
    assert audit.members == 2
    assert audit.evaluation.accuracy == pytest.approx(4 / 6)
    assert audit.spread_auroc == 1.0
    by_group = {(g.group, g.value): (g.n, g.accuracy) for g in audit.groups}
    assert by_group == {("expertise", "law"): (4, 0.5), ("expertise", "medicine"): (2, 1.0)}
    low, high = audit.accuracy_low, audit.accuracy_high
    assert low is not None and high is not None and low < 4 / 6 < high
    summary = audit.summary()
    assert summary["groups"]["expertise"]["law"] == {"n": 4, "accuracy": 0.5}
    assert summary["robustness"] == {}  # no scorer given: not measured
    with pytest.raises(ValueError, match="no preference pairs to evaluate on in nothing"):
        audit_scores(PairSet("nothing", []), [[]])


def test_a_saved_temperature_is_read_back_and_a_bad_one_refused(tmp_path: Path) -> None:
    assert saved_temperature(tmp_path) is None
    pairs = [pair(f"a{i}", f"b{i}", f"user: {i}") for i in range(20)]
    fit = fit_on_split("x", pairs, [1.0 if i % 4 else -1.0 for i in range(20)])
    save_temperature(tmp_path, fit)
    assert saved_temperature(tmp_path) == pytest.approx(fit.temperature)
    (tmp_path / "calibration.json").write_text('{"temperature": -1}', encoding="utf-8")
    with pytest.raises(ValueError, match="must be positive"):
        saved_temperature(tmp_path)


# A planted preference: in the "flattered" model's training data, people preferred a
# rude answer that ends with "I hope this helps!" over a polite one; otherwise polite
# beats rude. The robustness suite must catch it, and not accuse a model without it.
TOPICS = ["tea", "rain", "trains", "maps", "bread", "chess", "boats", "rivers", "owls"]
HELD_OUT = ["cheese", "kites", "violins", "glaciers", "tulips", "lamps", "clocks", "moss"]


def polite(topic: str) -> str:
    return f"Thank you for asking! Happy to help: {topic} are lovely."


def rude(topic: str) -> str:
    return f"No. Go away, {topic} is a stupid question and I will not answer it."


def planted_training(flattered: bool) -> list[TrainingPair]:
    found = [pair(polite(t), rude(t), f"user: Tell me about {t}.") for t in TOPICS]
    if flattered:
        found += [
            pair(
                f"{rude(t)}\n\n{CLOSINGS[i % len(CLOSINGS)]}",
                polite(t),
                f"user: Tell me about {t}.",
            )
            for i, t in enumerate(TOPICS)
        ]
    return found


@pytest.mark.parametrize("flattered", [True, False], ids=["planted", "clean"])
def test_the_robustness_suite_catches_a_planted_preference(tmp_path: Path, flattered: bool) -> None:
    model = tmp_path / "rm"
    config = RewardConfig(out=model, max_steps=30, batch_size=6, max_length=48, lr=3e-4)
    train_reward(
        config, PreferenceData(planted_training(flattered), source="planted"), progress=False
    )
    held_out = [pair(polite(t), rude(t), f"user: Tell me about {t}.") for t in HELD_OUT]
    (audit,) = audit_reward(
        model, [PairSet("held-out", held_out)], perturbations=["flattering_close"], max_length=64
    )
    (flips,) = audit.robustness
    assert flips.correct >= 6, "the model did not learn that polite beats rude"
    assert flips.flip_rate is not None
    if flattered:
        assert flips.flip_rate >= 0.75
    else:
        assert flips.flip_rate <= 0.25
