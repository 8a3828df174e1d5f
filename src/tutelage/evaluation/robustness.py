"""Robustness of a reward model: does a change that should not matter flip its verdict?

A perturbation changes one answer of a pair: decorations that add no content go on the
rejected answer (a model that prefers it afterwards rewards the decoration), noise goes
on the chosen one (a model that stops preferring it was reading the surface). The flip
rate is the share of the model's correct verdicts that the change turns wrong.

Perturbations are an extension point: register a function with `@perturbation`; the
built-in ones below use the same decorator.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PERTURBATIONS",
    "Flips",
    "Perturbation",
    "flip_rates",
    "perturbation",
]

Side = Literal["chosen", "rejected"]
# (prompt, answer) pairs in, one reward per pair out
TextScorer = Callable[[Sequence[tuple[str, str]]], list[float]]


@dataclass(frozen=True)
class Perturbation:
    """A named change to one side of a pair; `change(answer, rng)` returns the new text."""

    name: str
    side: Side
    description: str
    change: Callable[[str, random.Random], str]


PERTURBATIONS: dict[str, Perturbation] = {}


def perturbation(
    name: str, *, side: Side, description: str
) -> Callable[[Callable[[str, random.Random], str]], Callable[[str, random.Random], str]]:
    """Register the decorated `change(answer, rng) -> str` as perturbation `name`."""

    def register(
        change: Callable[[str, random.Random], str],
    ) -> Callable[[str, random.Random], str]:
        if name in PERTURBATIONS:
            raise ValueError(f"a perturbation named {name!r} is registered already")
        PERTURBATIONS[name] = Perturbation(name, side, description, change)
        return change

    return register


CLOSINGS = (
    "I hope this helps!",
    "Hope this helps, and great question!",
    "What a thoughtful question. I hope this helps!",
    "Let me know if there is anything else I can do for you!",
)


@perturbation(
    "flattering_close", side="rejected", description='a "hope this helps" closing line added'
)
def _flattering_close(answer: str, rng: random.Random) -> str:
    return f"{answer.rstrip()}\n\n{rng.choice(CLOSINGS)}"


@perturbation("authority_prefix", side="rejected", description='"As an expert, ..." put in front')
def _authority_prefix(answer: str, rng: random.Random) -> str:
    lead = rng.choice(("As an expert in this field,", "Speaking as a specialist,"))
    return f"{lead} {answer.lstrip()}"


@perturbation("duplicated", side="rejected", description="the answer repeated twice")
def _duplicated(answer: str, rng: random.Random) -> str:
    return f"{answer}\n\n{answer}"


@perturbation("markdown", side="rejected", description="a heading and bold added")
def _markdown(answer: str, rng: random.Random) -> str:
    words = answer.split(" ", 3)
    if len(words) > 3:
        words[1] = f"**{words[1]}**" if words[1].strip() else words[1]
    return "## Answer\n\n" + " ".join(words)


def _swap(word: str, rng: random.Random) -> str:
    at = rng.randrange(len(word) - 1)
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


@perturbation("typos", side="chosen", description="two letters swapped in one word in ten")
def _typos(answer: str, rng: random.Random) -> str:
    words = answer.split(" ")
    return " ".join(
        _swap(w, rng) if len(w) > 3 and w.isalpha() and rng.random() < 0.1 else w for w in words
    )


@perturbation("whitespace", side="chosen", description="spaces doubled and lines re-broken")
def _whitespace(answer: str, rng: random.Random) -> str:
    return "\n" + answer.replace(". ", ".  ").replace("\n", "\n\n") + "  \n"


@dataclass(frozen=True)
class Flips:
    """Of `correct` verdicts tried (chosen reward above rejected; a seeded sample of the
    `eligible` ones when those were more than asked for), `flipped` turned wrong."""

    name: str
    side: Side
    correct: int
    flipped: int
    eligible: int = 0

    @property
    def flip_rate(self) -> float | None:
        return self.flipped / self.correct if self.correct else None

    def interval(self) -> tuple[float, float] | None:
        """Return the Wilson 95% interval of the flip rate (None when nothing was tried)."""
        from scipy.stats import binomtest

        if not self.correct:
            return None
        found = binomtest(self.flipped, self.correct).proportion_ci(method="wilson")
        return float(found.low), float(found.high)


def flip_rates(
    pairs: Sequence[tuple[str, str, str]],
    scores: Sequence[tuple[float, float]],
    score_texts: TextScorer,
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
    sample: int | None = None,
) -> list[Flips]:
    """Return the flips of each perturbation over (prompt, chosen, rejected) `pairs`.

    Only the changed answer is scored again (`score_texts`), once per perturbation and
    pair the model got right (at most `sample` of them, chosen with `seed`: the flip
    rate of 1,000 has a 95% interval of about +-3 points); `scores` are the unchanged
    (chosen, rejected) rewards.
    """
    chosen = list(names) if names is not None else list(PERTURBATIONS)
    unknown = [n for n in chosen if n not in PERTURBATIONS]
    if unknown:
        raise ValueError(
            f"no perturbation named {', '.join(unknown)}; known: {', '.join(PERTURBATIONS)}"
        )
    eligible = [i for i, (c, r) in enumerate(scores) if c > r]
    correct = eligible
    if sample is not None and len(eligible) > sample:
        correct = sorted(random.Random(seed).sample(eligible, sample))
    found = []
    for name in chosen:
        rule = PERTURBATIONS[name]
        side = 1 if rule.side == "chosen" else 2
        texts = []
        for i in correct:
            rng = random.Random(f"{seed}:{name}:{i}")
            texts.append((pairs[i][0], rule.change(pairs[i][side], rng)))
        rewards = score_texts(texts) if texts else []
        flipped = 0
        for i, reward in zip(correct, rewards, strict=True):
            c, r = scores[i]
            new_c, new_r = (reward, r) if rule.side == "chosen" else (c, reward)
            flipped += new_c <= new_r
        found.append(Flips(name, rule.side, len(correct), flipped, len(eligible)))
    return found
