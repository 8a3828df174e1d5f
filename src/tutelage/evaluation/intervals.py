"""Intervals and ranking scores on top of scipy and scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["bootstrap_mean_interval", "spread_auroc"]

RESAMPLES = 2000


def bootstrap_mean_interval(
    values: Sequence[float], *, seed: int = 0, confidence: float = 0.95
) -> tuple[float | None, float | None]:
    """Return the percentile bootstrap interval of the mean of `values` (None, None
    below two values)."""
    import numpy as np
    from scipy.stats import bootstrap

    if len(values) < 2:
        return None, None
    data = np.asarray(values, dtype=float)
    if np.all(data == data[0]):  # every resample has the same mean
        return float(data[0]), float(data[0])
    found = bootstrap(
        (data,),
        np.mean,
        n_resamples=RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(found.confidence_interval.low), float(found.confidence_interval.high)


def spread_auroc(spreads: Sequence[float], mistakes: Sequence[bool]) -> float | None:
    """Return the AUROC of `spreads` for telling mistakes from correct verdicts (0.5: the
    spread says nothing; None when there are no mistakes or no correct verdicts)."""
    from sklearn.metrics import roc_auc_score

    if len(set(mistakes)) < 2:
        return None
    return float(roc_auc_score(list(mistakes), list(spreads)))
