"""Flags for experts whose judgments look random, biased, hurried or inverted.

Each flag is a test on an expert's own counts (see WorkerEvidence), not a threshold fitted
to one data set:

- inverted: agreement with the other experts' consensus is significantly *below* what
  answering at random with the expert's own label mix would give (one-sided binomial
  test, p < SIGNIFICANCE). Honest experts sit far above chance; only someone who
  systematically swaps answers sits far below it, however well they did on gold.
- random: agreement is not significantly *above* chance (one-sided binomial test,
  p >= RANDOM_ALPHA) and the chance-corrected agreement (kappa against the consensus)
  is below RANDOM_MAX_KAPPA, the top of Landis and Koch's "slight" band: the answers
  cannot be told from guessing, and they are not merely a short record of a weak but
  honest expert (in a simulation with 30 judgments per expert, the test alone flagged
  one honest expert in four). A truly random expert escapes with probability about
  RANDOM_ALPHA, more only on very short records.
- position_bias: the answer shown first is chosen in a share of decisive judgments that
  differs from 50% (two-sided binomial test, p < SIGNIFICANCE; the A/B order is random
  per assignment, so an unbiased expert picks the first shown half the time) by at least
  POSITION_MIN_EFFECT, so a large sample does not flag a trivial lean.
- too_fast: the expert's median active seconds are under TOO_FAST_RATIO of the project's
  median: a quarter of the time peers take to read two answers is not enough to read them.

The agreement tests need MIN_COMPARED judgments with a consensus of other experts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scipy.stats import binomtest

from tutelage.quality.reliability import SIGNIFICANCE, WorkerEvidence

__all__ = [
    "FLAG_KINDS",
    "MIN_COMPARED",
    "POSITION_MIN_EFFECT",
    "RANDOM_ALPHA",
    "RANDOM_MAX_KAPPA",
    "TOO_FAST_RATIO",
    "ExpertFlag",
    "expert_flags",
]

FLAG_KINDS = ("random", "position_bias", "too_fast", "inverted")
MIN_COMPARED = 20
RANDOM_ALPHA = 0.01
RANDOM_MAX_KAPPA = 0.2
POSITION_MIN_EFFECT = 0.15
TOO_FAST_RATIO = 0.25
# When chance agreement is this high (nearly every answer is the same label) the
# agreement tests have no power to tell anyone apart, so they are not run.
_MAX_TESTABLE_CHANCE = 0.9


@dataclass(frozen=True)
class ExpertFlag:
    """A suspicion about one expert: kind is random, position_bias, too_fast or inverted."""

    worker: str
    kind: str
    evidence: str


def expert_flags(evidence: Iterable[WorkerEvidence]) -> list[ExpertFlag]:
    """Every flag the evidence supports, by worker then kind."""
    flags: list[ExpertFlag] = []
    for e in evidence:
        flags.extend(_agreement_flags(e))
        flags.extend(_position_flags(e))
        flags.extend(_speed_flags(e))
    return flags


def _agreement_flags(e: WorkerEvidence) -> list[ExpertFlag]:
    if e.compared < MIN_COMPARED or e.chance is None or e.chance > _MAX_TESTABLE_CHANCE:
        return []
    share = e.agreed / e.compared
    seen = (
        f"agrees with the other experts' consensus on {e.agreed} of {e.compared} judgments "
        f"({share:.0%}); answering at random with the same mix of labels would agree on "
        f"{e.chance:.0%}"
    )
    below = binomtest(e.agreed, e.compared, e.chance, alternative="less").pvalue
    if below < SIGNIFICANCE:
        return [ExpertFlag(e.worker, "inverted", f"{seen} (p = {below:.2g}){_swaps(e)}")]
    above = binomtest(e.agreed, e.compared, e.chance, alternative="greater").pvalue
    kappa = (share - e.chance) / (1 - e.chance)
    if above >= RANDOM_ALPHA and kappa < RANDOM_MAX_KAPPA:
        text = f"{seen}: not better than chance (p = {above:.2g}, kappa {kappa:.2f})"
        return [ExpertFlag(e.worker, "random", text)]
    return []


def _swaps(e: WorkerEvidence) -> str:
    """How often the expert gave b when the consensus was a, and a when it was b."""
    a_as_b = e.confusion.get("a", {}).get("b")
    b_as_a = e.confusion.get("b", {}).get("a")
    if a_as_b is None or b_as_a is None:
        return ""
    return f"; answers b on {a_as_b:.0%} of items whose consensus is a, a on {b_as_a:.0%} of b"


def _position_flags(e: WorkerEvidence) -> list[ExpertFlag]:
    if e.chose_shown_first is None or e.decisive == 0:
        return []
    share = e.chose_shown_first / e.decisive
    p = binomtest(e.chose_shown_first, e.decisive, 0.5).pvalue
    if p >= SIGNIFICANCE or abs(share - 0.5) < POSITION_MIN_EFFECT:
        return []
    text = (
        f"chose the answer shown first in {e.chose_shown_first} of {e.decisive} decisive "
        f"judgments ({share:.0%}) although the order was random (p = {p:.2g} against 50%)"
    )
    return [ExpertFlag(e.worker, "position_bias", text)]


def _speed_flags(e: WorkerEvidence) -> list[ExpertFlag]:
    if e.median_seconds is None or not e.project_median_seconds:
        return []
    ratio = e.median_seconds / e.project_median_seconds
    if ratio >= TOO_FAST_RATIO:
        return []
    text = (
        f"median {e.median_seconds:.1f} s per judgment, {ratio:.2f}x the project's median of "
        f"{e.project_median_seconds:.1f} s: too little time to read both answers"
    )
    return [ExpertFlag(e.worker, "too_fast", text)]
