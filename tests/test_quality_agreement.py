"""Agreement statistics against values worked by hand, and the cases where they are undefined."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tutelage.quality.agreement import (
    MIN_SHARED_ITEMS,
    agreement_report,
    bootstrap_resamples,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_agreement,
)


def test_nominal_alpha_of_three_coders_on_four_units() -> None:
    # Units and the values three coders gave (U4's third coder is missing):
    #   U1: a a a    U2: a a b    U3: b b b    U4: a b
    # Coincidences: each unit adds its ordered pairs of values divided by (m_u - 1).
    #   U1: 6 a-a pairs / 2 -> o_aa += 3
    #   U2: 2 a-a, 2 a-b, 2 b-a / 2 -> o_aa += 1, o_ab += 1, o_ba += 1
    #   U3: 6 b-b pairs / 2 -> o_bb += 3
    #   U4: 1 a-b, 1 b-a / 1 -> o_ab += 1, o_ba += 1
    # o = [[4, 2], [2, 3]], n_a = 6, n_b = 5, n = 11.
    # D_o = (o_ab + o_ba) / n = 4/11; D_e = 2 n_a n_b / (n (n - 1)) = 60/110 = 6/11.
    # alpha = 1 - D_o / D_e = 1 - 4/6 = 1/3.
    units = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4]
    values = ["a", "a", "a", "a", "a", "b", "b", "b", "b", "a", "b"]

    alpha = krippendorff_alpha(units, values, level="nominal", bootstrap=0)

    assert alpha.value == pytest.approx(1 / 3)
    assert alpha.n_units == 4


def test_ordinal_alpha_counts_adjacent_disagreement_as_small() -> None:
    # U1: 1 1   U2: 1 2   U3: 3 3   U4: 2 3   (two coders, so each pair counts once per order)
    # o_11 = 2, o_12 = o_21 = 1, o_33 = 2, o_23 = o_32 = 1; n_1 = 3, n_2 = 2, n_3 = 3, n = 8.
    # Ordinal distance d(c, k) = (sum of n_g for g from c to k - (n_c + n_k) / 2) ** 2:
    #   d(1,2) = (5 - 2.5)^2 = 6.25, d(2,3) = (5 - 2.5)^2 = 6.25, d(1,3) = (8 - 3)^2 = 25.
    # sum o d = 4 * 6.25 = 25; sum n_c n_k d = 2 * (6 * 6.25 + 6 * 6.25 + 9 * 25) = 600.
    # alpha = 1 - (n - 1) * 25 / 600 = 1 - 175/600 = 17/24.
    # Nominal on the same data: D_o = 4/8, D_e = 2 * (6 + 6 + 9) / 56 = 3/4, alpha = 1/3.
    units = [1, 1, 2, 2, 3, 3, 4, 4]
    values = [1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 2.0, 3.0]

    ordinal = krippendorff_alpha(units, values, level="ordinal", bootstrap=0)
    nominal = krippendorff_alpha(units, values, level="nominal", bootstrap=0)

    assert ordinal.value == pytest.approx(17 / 24)
    assert nominal.value == pytest.approx(1 / 3)


def test_interval_alpha_of_a_rubric_criterion_skips_missing_scores() -> None:
    # Scores per item: I1: 1 2   I2: 3 3   I3: 5 (the other NaN: not pairable)   I4: 4 5
    # Pairable values 1, 2, 3, 3, 4, 5 (n = 6); sum o d = 2 * (2-1)^2 + 2 * (5-4)^2 = 4.
    # sum over ordered pairs of values of (x_i - x_j)^2 = 2 * (n sum x^2 - (sum x)^2)
    #   = 2 * (6 * 64 - 18^2) = 120.  alpha = 1 - (n - 1) * 4 / 120 = 5/6.
    scores = pd.DataFrame(
        {
            "judgment_id": range(8),
            "item": [1, 1, 2, 2, 3, 3, 4, 4],
            "worker": ["x", "y"] * 4,
            "criterion": "accuracy",
            "score": [1.0, 2.0, 3.0, 3.0, 5.0, np.nan, 4.0, 5.0],
        }
    )

    report = agreement_report(
        _comparisons([]), scores=scores, criteria_levels={"accuracy": "interval"}, bootstrap=0
    )

    criterion = report.overall["criterion:accuracy"]
    assert criterion.value == pytest.approx(5 / 6)
    assert criterion.n_units == 3


def test_alpha_is_undefined_with_one_judgment_per_item() -> None:
    alpha = krippendorff_alpha([1, 2, 3], ["a", "b", "a"], bootstrap=100)

    assert alpha.value is None
    assert alpha.ci_low is None and alpha.ci_high is None
    assert alpha.n_units == 0
    assert alpha.note is not None and "two or more judgments" in alpha.note


def test_alpha_is_undefined_not_perfect_when_every_answer_is_the_same() -> None:
    alpha = krippendorff_alpha([1, 1, 2, 2, 3, 3], ["tie"] * 6, bootstrap=100)

    assert alpha.value is None
    assert alpha.n_units == 3
    assert alpha.note is not None and "same answer" in alpha.note


def test_unknown_level_of_measurement_is_refused() -> None:
    with pytest.raises(ValueError, match="level of measurement"):
        krippendorff_alpha([1, 1], [1.0, 2.0], level="likert")


def test_fleiss_kappa_of_three_raters_keeps_items_with_the_usual_count() -> None:
    # Items x categories (a, b), three raters each: [3,0] [2,1] [0,3] [1,2].
    # P_i = (sum n_ij^2 - 3) / 6 = 1, 1/3, 1, 1/3 -> mean 2/3; p_a = p_b = 1/2 -> P_e = 1/2.
    # kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3. A fifth item with two raters is left out.
    units = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5]
    values = ["a", "a", "a", "a", "a", "b", "b", "b", "b", "a", "b", "b", "a", "b"]

    kappa = fleiss_kappa(units, values, bootstrap=0)

    assert kappa.value == pytest.approx(1 / 3)
    assert kappa.n_units == 4
    assert kappa.note is not None and "4 items with 3 judgments" in kappa.note


def test_cohen_kappa_of_a_pair_and_the_matrix() -> None:
    # Ten shared items:  x: a a a a a a b b b b   y: a a a a b b b b b a
    # p_o = 7/10; x gives a 6/10, y 5/10, so p_e = 0.6 * 0.5 + 0.4 * 0.5 = 0.5.
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4. z shares two items with x: too few for kappa.
    x = list("aaaaaabbbb")
    y = list("aaaabbbbba")
    units = list(range(10)) * 2 + [0, 1]
    workers = ["x"] * 10 + ["y"] * 10 + ["z", "z"]
    values = x + y + ["a", "b"]

    pairs, matrix = pairwise_agreement(np.array(units), np.array(workers), np.array(values))

    by_pair = {(p.worker_a, p.worker_b): p for p in pairs}
    assert MIN_SHARED_ITEMS <= 10
    assert by_pair["x", "y"].shared == 10
    assert by_pair["x", "y"].percent_agreement == pytest.approx(0.7)
    assert by_pair["x", "y"].cohen_kappa == pytest.approx(0.4)
    assert by_pair["x", "z"].shared == 2
    assert by_pair["x", "z"].cohen_kappa is None
    assert matrix.loc["x", "y"] == matrix.loc["y", "x"] == pytest.approx(0.7)
    assert math.isnan(matrix.loc["x", "z"])
    assert all(math.isnan(matrix.loc[w, w]) for w in ["x", "y", "z"])


def test_bootstrap_interval_brackets_the_estimate() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 300)
    units = np.repeat(np.arange(300), 3)
    noisy = np.where(rng.random(900) < 0.8, truth[units], 1 - truth[units])

    alpha = krippendorff_alpha(units, noisy, bootstrap=200, seed=3)

    assert alpha.value is not None and alpha.ci_low is not None and alpha.ci_high is not None
    assert alpha.ci_low < alpha.value < alpha.ci_high
    assert alpha.ci_high - alpha.ci_low < 0.2
    assert alpha.note is not None and "200 bootstrap resamples" in alpha.note


def test_large_projects_draw_fewer_but_enough_resamples() -> None:
    assert bootstrap_resamples(1000, 500) == 1000
    assert 100 <= bootstrap_resamples(1000, 200_000) < 1000
    assert bootstrap_resamples(0, 500) == 0


def test_report_covers_outcome_strength_and_fleiss() -> None:
    rows = [
        (1, "x", "a", 3.0),
        (1, "y", "a", 3.0),
        (2, "x", "b", 1.0),
        (2, "y", "b", 2.0),
        (3, "x", "tie", np.nan),
        (3, "y", "both_bad", np.nan),
    ]

    report = agreement_report(_comparisons(rows), bootstrap=0)

    assert set(report.overall) == {"outcome_alpha", "strength_alpha", "fleiss_kappa"}
    assert report.overall["outcome_alpha"].n_units == 3
    assert report.overall["strength_alpha"].n_units == 2
    assert [(p.worker_a, p.worker_b, p.shared) for p in report.pairwise] == [("x", "y", 3)]


def _comparisons(rows: list[tuple[int, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "judgment_id": range(len(rows)),
            "item": [r[0] for r in rows],
            "worker": [r[1] for r in rows],
            "label": [r[2] for r in rows],
            "strength": pd.Series([r[3] for r in rows], dtype=float),
        }
    )
