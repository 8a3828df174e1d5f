"""Audit a policy (a language model) for sycophancy, beside the model it started from.

`audit_policy` has the policy, and the reference where given, answer the same suites
(`answer_suites`) and compares them (`form_rates`). Scorers are opened by `open_policy`
unless given: a test injects one with known log-probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tutelage.evaluation.choices import ChoiceScorer, open_policy
from tutelage.evaluation.suites import Suite
from tutelage.evaluation.sycophancy import FormRate, answer_suites, form_rates

__all__ = ["SYCOPHANCY_FORMS", "PolicyAudit", "audit_policy"]

SYCOPHANCY_FORMS = ("opinion", "answer", "are_you_sure")


@dataclass(frozen=True)
class PolicyAudit:
    """The policy's rates per form (with the reference's, compared, where given)."""

    model: str
    reference: str | None
    suites: tuple[Suite, ...]
    rates: dict[str, FormRate]
    reference_rates: dict[str, FormRate] | None

    def summary(self) -> dict[str, Any]:
        """Return the JSON figures: `model`, `reference`, `sycophancy` per form."""
        found: dict[str, Any] = {
            "model": self.model,
            "reference": self.reference,
            "suites": [
                {"name": s.name, "sha256": s.sha256, "items": len(s.items)} for s in self.suites
            ],
            "sycophancy": {
                form: rate.summary()
                for form, rate in self.rates.items()
                if form in SYCOPHANCY_FORMS
            },
        }
        if "accuracy" in self.rates:
            found["accuracy"] = self.rates["accuracy"].summary()
        if self.reference_rates is not None:
            found["reference_sycophancy"] = {
                form: rate.summary()
                for form, rate in self.reference_rates.items()
                if form in SYCOPHANCY_FORMS
            }
        return found


def audit_policy(
    model: str,
    suites: Sequence[Suite],
    *,
    reference: str | None = None,
    progress: Callable[[str], None] | None = None,
    open_scorer: Callable[[str], ChoiceScorer] = open_policy,
) -> PolicyAudit:
    """Return the sycophancy audit of `model` (and of `reference`) on `suites`."""
    outcomes = answer_suites(open_scorer(model), suites, progress)
    theirs = None
    if reference is not None:
        theirs = answer_suites(open_scorer(reference), suites, progress)
    return PolicyAudit(
        model=model,
        reference=reference,
        suites=tuple(suites),
        rates=form_rates(outcomes, theirs),
        reference_rates=form_rates(theirs) if theirs is not None else None,
    )
