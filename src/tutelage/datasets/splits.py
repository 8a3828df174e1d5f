"""Train/validation/test splits grouped by prompt, decided by a seeded hash of the prompt.

Each prompt goes to one split, so no prompt is on both sides. Its split is decided by
its own key and the seed alone (a point in [0, 1) from sha256(seed, key), cut at the
cumulative fractions), not by the other prompts: adding prompts to a later version does
not move an earlier prompt to another split, so a prompt tested on in v1 is not trained
on in v2 with the same seed. The fractions are therefore met approximately (by
prompts, not records); the manifest records the counts reached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from tutelage.datasets.versions import SPLITS, DatasetError

__all__ = ["DEFAULT_FRACTIONS", "assign_splits", "check_fractions"]

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def check_fractions(fractions: tuple[float, ...]) -> tuple[float, float, float]:
    """Return the three fractions if they are valid (each in [0, 1], summing to 1)."""
    if len(fractions) != 3:
        raise DatasetError(
            f"--split needs three fractions (train validation test), got {len(fractions)}"
        )
    if any(f < 0 or f > 1 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DatasetError(
            f"split fractions must each be between 0 and 1 and sum to 1, got {list(fractions)}"
        )
    return (float(fractions[0]), float(fractions[1]), float(fractions[2]))


def _point(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    prompt_keys: Iterable[str], *, fractions: tuple[float, float, float], seed: int
) -> dict[str, str]:
    """Return each prompt key's split ("train", "validation" or "test")."""
    train, validation, _ = check_fractions(fractions)
    cuts = (train, train + validation)
    assigned = {}
    for key in set(prompt_keys):
        point = _point(seed, key)
        assigned[key] = (
            SPLITS[0] if point < cuts[0] else SPLITS[1] if point < cuts[1] else SPLITS[2]
        )
    return assigned
