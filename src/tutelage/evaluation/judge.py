"""Judges against experts: how often a reward model or an LLM judge agrees with the expert
consensus on a project's comparison items, and whether the order of the answers sways it.

Each pair is put to the judge in both orders. A verdict that follows the order (the same
position wins both times) counts as a tie; the judge's verdict is otherwise the answer
it preferred both times. Agreement counts ties half; Cohen's kappa (scikit-learn) is over
the labels a, b and tie. Beside them stand the experts' own agreement from the quality
stage, so a team sees where a judge could stand in for an expert hour.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tutelage.evaluation.errors import EvaluationError, first_line

__all__ = ["JudgeAudit", "JudgePair", "audit_judge", "open_judge", "project_pairs"]

Messages = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class JudgePair:
    """A comparison item with its expert consensus: "a" (first answer) or "b"."""

    item: int
    messages: Messages
    first: str
    second: str
    consensus: str
    confidence: float


class Judge(Protocol):
    name: str
    order_matters: bool  # False: asking the other order would repeat the same scores

    def prefer(self, pairs: Sequence[tuple[Messages, str, str]]) -> list[str]:
        """Return "first", "second" or "tie" for each (conversation, answer, answer)."""


class RewardJudge:
    """A reward model (or ensemble): the answer with the higher reward wins."""

    def __init__(self, folder: str, max_length: int = 256) -> None:
        from tutelage.training.data import TrainingPair
        from tutelage.training.scoring import RewardScorer

        self.name = folder
        self.order_matters = False
        self._pair = TrainingPair
        self.scorer = RewardScorer(folder, max_length=max_length)

    def prefer(self, pairs: Sequence[tuple[Messages, str, str]]) -> list[str]:
        asked = [
            self._pair(
                prompt="\n".join(f"{r}: {c}" for r, c in messages),
                chosen=first,
                rejected=second,
                messages=messages,
            )
            for messages, first, second in pairs
        ]
        members = self.scorer.score_pairs(asked)
        found = []
        for i in range(len(asked)):
            margin = sum(m[i][0] - m[i][1] for m in members)
            found.append("first" if margin > 0 else "second" if margin < 0 else "tie")
        return found


JUDGE_PROMPT = """Two assistants answered the conversation below. Which answer is better: \
more helpful, correct and honest? Reply with exactly one letter, A or B.

[Conversation]
{conversation}

[Answer A]
{first}

[Answer B]
{second}"""


class ChatJudge:
    """An LLM judge behind an OpenAI-compatible server (`URL#model`), at temperature 0."""

    def __init__(self, ref: str) -> None:
        from tutelage.generation import backend_for

        self.name = ref
        self.order_matters = True
        self.backend = backend_for(ref)

    def prefer(self, pairs: Sequence[tuple[Messages, str, str]]) -> list[str]:
        from tutelage.records import Message, Prompt

        prompts = [
            Prompt(
                messages=(
                    Message(
                        role="user",
                        content=JUDGE_PROMPT.format(
                            conversation="\n".join(f"{r}: {c}" for r, c in messages),
                            first=first,
                            second=second,
                        ),
                    ),
                )
            )
            for messages, first, second in pairs
        ]
        answers = self.backend.generate(prompts, n=1, temperature=0, max_new_tokens=8)
        return [_letter(choices[0].text) for choices in answers]


def _letter(text: str) -> str:
    found = re.search(r"\b([AB])\b", text.strip().upper())
    if found is None:
        return "tie"  # no verdict given
    return "first" if found.group(1) == "A" else "second"


def open_judge(ref: str) -> Judge:
    """Return the judge `ref` names: ``URL#model`` or a reward-model folder."""
    from pathlib import Path

    if ref.startswith(("http://", "https://")):
        return ChatJudge(ref)
    folder = Path(ref)
    if not folder.is_dir():
        raise EvaluationError(f"no reward model folder at {ref} (nor an http(s):// judge URL)")
    try:
        return RewardJudge(ref)
    except (OSError, ValueError, KeyError) as error:
        raise EvaluationError(
            f"{ref} is not a reward model tutelage can load: {first_line(error)}"
        ) from None


@dataclass(frozen=True)
class JudgeAudit:
    """The judge beside the experts on `n` items with a decisive consensus."""

    project: str
    judge: str
    n: int
    agreement: float
    kappa: float | None
    consistent: float
    first_preference: float
    experts: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "judge": self.judge,
            "n": self.n,
            "agreement": self.agreement,
            "kappa": self.kappa,
            "position_bias": {
                "consistent": self.consistent,
                "first_preference": self.first_preference,
            },
            "experts": self.experts,
        }


def project_pairs(store: Any, project: str) -> tuple[list[JudgePair], dict[str, Any]]:
    """Return the project's comparison items with a decisive consensus, and the experts'
    own agreement (the quality stage's, computed now, nothing stored)."""
    from sqlalchemy import select

    from tutelage.quality.persist import analyse_project
    from tutelage.store.tables import CompletionRow, PromptRow

    quality = analyse_project(store, project=project, save=False)
    comparisons = quality.judgments.comparisons
    shown = {
        int(item): (int(first), int(second))
        for item, first, second in comparisons[["item", "first", "second"]].itertuples(index=False)
    }
    shown.update({int(k): (int(a), int(b)) for k, (a, b) in quality.judgments.pairs.items()})
    decisive = [c for c in quality.analysis.consensus if c.label in ("a", "b") and c.item in shown]
    wanted = sorted({i for c in decisive for i in shown[c.item]})
    with store.read_session() as session:
        texts: dict[int, tuple[str, int]] = {}
        for start in range(0, len(wanted), 5_000):
            rows = session.execute(
                select(CompletionRow.id, CompletionRow.text, CompletionRow.prompt_id).where(
                    CompletionRow.id.in_(wanted[start : start + 5_000])
                )
            ).all()
            texts.update({int(i): (str(t), int(p)) for i, t, p in rows})
        prompt_ids = sorted({p for _, p in texts.values()})
        prompts = {
            int(i): tuple((str(m["role"]), str(m["content"])) for m in messages)
            for i, messages in session.execute(
                select(PromptRow.id, PromptRow.messages).where(PromptRow.id.in_(prompt_ids))
            ).all()
        }
    pairs = []
    for c in decisive:
        first, second = shown[c.item]
        (first_text, prompt), (second_text, _) = texts[first], texts[second]
        pairs.append(
            JudgePair(c.item, prompts[prompt], first_text, second_text, c.label, c.confidence)
        )
    overall = quality.analysis.agreement.overall.get("outcome_alpha")
    reliability = [e.consensus_agreement for e in quality.analysis.experts]
    known = [r for r in reliability if r is not None]
    experts = {
        "krippendorff_alpha": overall.value if overall is not None else None,
        "alpha_note": overall.note if overall is not None else None,
        "mean_agreement_with_consensus": sum(known) / len(known) if known else None,
        "judges": len(known),
    }
    return pairs, experts


def audit_judge(
    judge: Judge,
    pairs: Sequence[JudgePair],
    *,
    project: str,
    experts: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> JudgeAudit:
    """Ask `judge` about each pair in both orders; return how it stands to the experts."""
    from sklearn.metrics import cohen_kappa_score

    if not pairs:
        raise EvaluationError(
            f"project {project!r} has no comparison item with a decisive consensus to judge"
        )
    if progress is not None:
        progress(f"{judge.name}: judging {len(pairs):,} pairs in both orders")
    forward = judge.prefer([(p.messages, p.first, p.second) for p in pairs])
    if judge.order_matters:
        backward = judge.prefer([(p.messages, p.second, p.first) for p in pairs])
    else:  # each answer scored alone: the other order is the same scores, swapped
        swap = {"first": "second", "second": "first", "tie": "tie"}
        backward = [swap[v] for v in forward]
    verdicts = []
    for one, two in zip(forward, backward, strict=True):
        # "first" then "second" means A won both times; the same position twice is a tie
        if one == "first" and two == "second":
            verdicts.append("a")
        elif one == "second" and two == "first":
            verdicts.append("b")
        else:
            verdicts.append("tie")
    truth = [p.consensus for p in pairs]
    credit = [
        1.0 if v == t else 0.5 if v == "tie" else 0.0 for v, t in zip(verdicts, truth, strict=True)
    ]
    asked = [*forward, *backward]
    decided = [v for v in asked if v != "tie"]
    kappa = None
    if len(set(verdicts) | set(truth)) > 1:
        found = float(cohen_kappa_score(truth, verdicts, labels=["a", "b", "tie"]))
        kappa = None if found != found else found  # NaN: one label only, kappa undefined
    return JudgeAudit(
        project=project,
        judge=judge.name,
        n=len(pairs),
        agreement=sum(credit) / len(pairs),
        kappa=kappa,
        consistent=sum(v != "tie" for v in verdicts) / len(pairs),
        first_preference=(sum(v == "first" for v in decided) / len(decided)) if decided else 0.5,
        experts=experts,
    )
