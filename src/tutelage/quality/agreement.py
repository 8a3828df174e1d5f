"""Inter-rater agreement: Krippendorff's alpha, Cohen's and Fleiss' kappa, pairwise matrix.

The statistics come from `krippendorff`, scikit-learn and statsmodels; only the bootstrap
(resampling items, which none of them offers) is written here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import krippendorff
import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

__all__ = [
    "MIN_SHARED_ITEMS",
    "AgreementReport",
    "PairAgreement",
    "Statistic",
    "agreement_report",
    "bootstrap_resamples",
    "fleiss_kappa",
    "krippendorff_alpha",
    "pairwise_agreement",
]

MIN_SHARED_ITEMS = 10
"""Fewest items two experts must share before their kappa and matrix cell are reported."""

# A resample costs time in proportion to the items it holds: past this many item-rows in
# all, fewer resamples are drawn (never fewer than MIN_RESAMPLES). With that many items
# the interval is narrow and 100 resamples place it well enough.
_RESAMPLED_ROWS_BUDGET = 20_000_000
_MIN_RESAMPLES = 100

_LEVELS: dict[str, Literal["nominal", "ordinal", "interval"]] = {
    "nominal": "nominal",
    "ordinal": "ordinal",
    "interval": "interval",
}


@dataclass(frozen=True)
class Statistic:
    """One agreement figure; `value` is None, with `note` saying why, when undefined."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n_units: int
    note: str | None


@dataclass(frozen=True)
class PairAgreement:
    """How often two experts agree on the items they both judged."""

    worker_a: str
    worker_b: str
    shared: int
    percent_agreement: float
    cohen_kappa: float | None


@dataclass(frozen=True)
class AgreementReport:
    """Agreement for a project: overall statistics, each pair, and the worker x worker matrix.

    `matrix` holds the share of shared items two experts agreed on, NaN on the diagonal and
    where they share fewer than MIN_SHARED_ITEMS items.
    """

    overall: dict[str, Statistic]
    pairwise: list[PairAgreement]
    matrix: pd.DataFrame


def bootstrap_resamples(requested: int, n_units: int) -> int:
    """How many bootstrap resamples to draw for `n_units` items when `requested` were asked."""
    if requested <= 0 or n_units == 0:
        return 0
    return min(requested, max(_MIN_RESAMPLES, _RESAMPLED_ROWS_BUDGET // n_units))


def krippendorff_alpha(
    units: Sequence[Any] | np.ndarray | pd.Series,
    values: Sequence[Any] | np.ndarray | pd.Series,
    *,
    level: str = "nominal",
    bootstrap: int = 1000,
    seed: int = 0,
) -> Statistic:
    """Krippendorff's alpha of `values` (one per judgment, NaN = missing) grouped by `units`.

    `level` is "nominal", "ordinal" or "interval"; the 95% interval resamples units.
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown level of measurement {level!r}; use one of {sorted(_LEVELS)}")
    measurement = _LEVELS[level]
    counts, domain = _value_counts(units, values)
    counts = counts[counts.sum(axis=1) >= 2]
    undefined = _undefined_reason(counts)
    if undefined is not None:
        return Statistic(None, None, None, len(counts), undefined)

    def alpha(sample: np.ndarray) -> float | None:
        if _undefined_reason(sample) is not None:
            return None
        return float(
            krippendorff.alpha(
                value_counts=sample, value_domain=domain, level_of_measurement=measurement
            )
        )

    return _with_interval(alpha, counts, bootstrap=bootstrap, seed=seed, note="")


def fleiss_kappa(
    units: Sequence[Any] | np.ndarray | pd.Series,
    values: Sequence[Any] | np.ndarray | pd.Series,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> Statistic:
    """Fleiss' kappa over the items with the most common number (two or more) of judgments.

    Fleiss' kappa needs the same number of judges on every item, so items with another
    number are left out, and the note says how many were kept.
    """
    counts, _ = _value_counts(units, values)
    counts = counts[counts.sum(axis=1) >= 2]
    note = ""
    if len(counts):
        per_unit = counts.sum(axis=1)
        judges = int(np.bincount(per_unit).argmax())
        kept = per_unit == judges
        if not kept.all():
            note = f"over the {int(kept.sum())} items with {judges} judgments each; "
        counts = counts[kept]
    undefined = _undefined_reason(counts)
    if undefined is not None:
        return Statistic(None, None, None, len(counts), undefined)

    def kappa(sample: np.ndarray) -> float | None:
        if _undefined_reason(sample) is not None:
            return None
        return float(statsmodels_fleiss_kappa(sample, method="fleiss"))

    return _with_interval(kappa, counts, bootstrap=bootstrap, seed=seed, note=note)


def pairwise_agreement(
    units: np.ndarray | pd.Series,
    workers: np.ndarray | pd.Series,
    values: np.ndarray | pd.Series,
    *,
    min_shared: int = MIN_SHARED_ITEMS,
) -> tuple[list[PairAgreement], pd.DataFrame]:
    """Agreement of every pair of experts who judged an item in common, and the matrix.

    Cohen's kappa is given for pairs sharing at least `min_shared` items.
    """
    frame = pd.DataFrame(
        {"unit": np.asarray(units), "worker": np.asarray(workers), "value": np.asarray(values)}
    )
    frame = frame[frame["value"].notna()]
    names = sorted(frame["worker"].unique().tolist())
    frame["worker"] = pd.Categorical(frame["worker"], categories=names).codes.astype(np.int64)
    frame["value"] = pd.factorize(frame["value"])[0]
    pairs = frame.merge(frame, on="unit", suffixes=("_a", "_b"))
    pairs = pairs[pairs["worker_a"] < pairs["worker_b"]].sort_values(
        ["worker_a", "worker_b"], kind="stable"
    )
    cells = np.full((len(names), len(names)), np.nan)
    if pairs.empty:
        return [], pd.DataFrame(cells, index=names, columns=names)
    key = pairs["worker_a"].to_numpy() * len(names) + pairs["worker_b"].to_numpy()
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    first = pairs["value_a"].to_numpy()
    second = pairs["value_b"].to_numpy()
    agreed = np.add.reduceat((first == second).astype(np.int64), starts)
    result: list[PairAgreement] = []
    for start, end, agree in zip(starts, ends, agreed, strict=True):
        i, j = divmod(int(key[start]), len(names))
        shared = int(end - start)
        share = float(agree) / shared
        kappa = None
        if shared >= min_shared:
            kappa = _cohen_kappa(first[start:end], second[start:end])
            cells[i, j] = cells[j, i] = share
        result.append(PairAgreement(names[i], names[j], shared, share, kappa))
    return result, pd.DataFrame(cells, index=names, columns=names)


def agreement_report(
    comparisons: pd.DataFrame,
    *,
    scores: pd.DataFrame | None = None,
    criteria_levels: dict[str, str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> AgreementReport:
    """Agreement on outcomes, strength and each rubric criterion, and between each pair.

    Outcomes are nominal, strength ordinal; a criterion is at its level in
    `criteria_levels` (ordinal when not given, as a Likert scale is).
    """
    items, labels = comparisons["item"].to_numpy(), comparisons["label"].to_numpy()
    overall = {
        "outcome_alpha": krippendorff_alpha(
            items, labels, level="nominal", bootstrap=bootstrap, seed=seed
        ),
        "strength_alpha": krippendorff_alpha(
            items,
            comparisons["strength"].to_numpy(dtype=float),
            level="ordinal",
            bootstrap=bootstrap,
            seed=seed,
        ),
        "fleiss_kappa": fleiss_kappa(items, labels, bootstrap=bootstrap, seed=seed),
    }
    if scores is not None:
        levels = criteria_levels or {}
        for criterion, rows in scores.groupby("criterion", sort=True):
            overall[f"criterion:{criterion}"] = krippendorff_alpha(
                rows["item"].to_numpy(),
                rows["score"].to_numpy(dtype=float),
                level=levels.get(str(criterion), "ordinal"),
                bootstrap=bootstrap,
                seed=seed,
            )
    pairs, matrix = pairwise_agreement(items, comparisons["worker"].to_numpy(), labels)
    return AgreementReport(overall, pairs, matrix)


def _cohen_kappa(first: np.ndarray, second: np.ndarray) -> float | None:
    # Undefined when both experts gave one and the same answer throughout (chance
    # agreement is 1); scikit-learn would warn and return NaN.
    if len(np.union1d(first, second)) < 2:
        return None
    return float(cohen_kappa_score(first, second))


def _value_counts(
    units: Sequence[Any] | np.ndarray | pd.Series, values: Sequence[Any] | np.ndarray | pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of each value per unit (units x values) and the sorted value domain."""
    value_codes, domain = pd.factorize(np.asarray(values), sort=True)
    present = value_codes >= 0  # missing values (NaN, None) are coded -1
    unit_codes = pd.factorize(np.asarray(units)[present])[0]
    value_codes = value_codes[present]
    n_units = int(unit_codes.max()) + 1 if len(unit_codes) else 0
    flat = np.bincount(unit_codes * len(domain) + value_codes, minlength=n_units * len(domain))
    return flat.reshape(n_units, len(domain)), np.asarray(domain)


def _undefined_reason(counts: np.ndarray) -> str | None:
    if len(counts) == 0:
        return "undefined: no item has two or more judgments to compare"
    if np.count_nonzero(counts.sum(axis=0)) < 2:
        return (
            "undefined: every judgment gave the same answer, "
            "so agreement cannot be told from chance"
        )
    return None


def _with_interval(
    statistic: Callable[[np.ndarray], float | None],
    counts: np.ndarray,
    *,
    bootstrap: int,
    seed: int,
    note: str,
) -> Statistic:
    """The statistic of `counts` with a 95% percentile interval from resampling its rows."""
    value = statistic(counts)
    resamples = bootstrap_resamples(bootstrap, len(counts))
    rng = np.random.default_rng(seed)
    # Written here because no library we use resamples value-count rows: a resample of
    # items is a resample of rows, so each costs one fancy index and one statistic call.
    estimates = [
        statistic(counts[rng.integers(0, len(counts), len(counts))]) for _ in range(resamples)
    ]
    defined = np.array([e for e in estimates if e is not None], dtype=float)
    if resamples == 0:
        return Statistic(value, None, None, len(counts), (note + "no bootstrap interval").strip())
    if len(defined) < resamples / 2:
        return Statistic(
            value, None, None, len(counts), note + "too few items for a bootstrap interval"
        )
    low, high = np.percentile(defined, [2.5, 97.5])
    text = f"95% interval from {resamples} bootstrap resamples of items"
    if resamples < bootstrap:
        text += f" ({bootstrap} asked; fewer for {len(counts)} items, where it is narrow)"
    return Statistic(value, float(low), float(high), len(counts), note + text)
