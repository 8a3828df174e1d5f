"""The typed records refuse what no stage could use, naming the field."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from tutelage.records import (
    Comparison,
    ComparisonOutcome,
    Completion,
    Expert,
    Flag,
    FlagKind,
    Message,
    Project,
    Prompt,
    Provenance,
    Ranking,
    Rating,
    Rewrite,
    RubricCriterion,
    Strength,
)

BY_EXPERT = Provenance(expert="dr-ng", active_seconds=42.5, shown={"a": "c1", "b": "c2"})


def test_a_project_carries_rubric_pay_and_nda() -> None:
    project = Project(
        name="cardiology",
        domain="medicine",
        rubric=(RubricCriterion(name="accuracy", scale_min=1, scale_max=7),),
        pay_rate_per_hour=Decimal("180.00"),
        nda_text="Confidential.",
    )
    assert project.rubric[0].scale_max == 7
    with pytest.raises(ValidationError, match="distinct names"):
        Project(name="x", rubric=(RubricCriterion(name="a"), RubricCriterion(name="a")))
    with pytest.raises(ValidationError, match="scale_min"):
        RubricCriterion(name="a", scale_min=5, scale_max=5)
    with pytest.raises(ValidationError, match="pay_rate_per_hour"):
        Project(name="x", pay_rate_per_hour=Decimal("-1"))
    with pytest.raises(ValidationError, match="name"):
        Project(name="a/b")


def test_every_judgment_kind_has_provenance() -> None:
    judgments = [
        Comparison(
            a="c1", b="c2", outcome=ComparisonOutcome.TIE, strength=Strength.SLIGHT,
            provenance=BY_EXPERT,
        ),
        Ranking(order=("c1", "c2", "c3"), provenance=BY_EXPERT),
        Rating(completion="c1", scores={"accuracy": 4}, provenance=BY_EXPERT),
        Rewrite(completion="c1", text="Better answer.", provenance=BY_EXPERT),
        Flag(completion="c1", start=3, end=9, flag=FlagKind.HALLUCINATION, provenance=BY_EXPERT),
    ]  # fmt: skip
    assert {j.kind for j in judgments} == {"comparison", "ranking", "rating", "rewrite", "flag"}
    assert all(j.provenance.active_seconds == 42.5 for j in judgments)


def test_judgments_refuse_nonsense() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'expert' or 'source'"):
        Provenance()
    with pytest.raises(ValidationError, match="exactly one"):
        Provenance(expert="a", source="b")
    with pytest.raises(ValidationError, match="once"):
        Ranking(order=("c1", "c1"), provenance=BY_EXPERT)
    with pytest.raises(ValidationError, match="end > start"):
        Flag(completion="c", start=5, end=5, flag=FlagKind.OTHER, provenance=BY_EXPERT)
    with pytest.raises(ValidationError, match="outcome"):
        Comparison.model_validate({"a": "1", "b": "2", "outcome": "maybe", "provenance": BY_EXPERT})
    with pytest.raises(ValidationError, match="role"):
        Message.model_validate({"role": "robot", "content": "hi"})
    with pytest.raises(ValidationError, match="messages"):
        Prompt(messages=())


def test_keys_identify_content() -> None:
    one = Prompt(messages=(Message(role="user", content="hi"),))
    same = Prompt(messages=(Message(role="user", content="hi"),))
    other = Prompt(messages=(Message(role="user", content="hi "),))
    assert one.key() == same.key() != other.key()
    assert Completion(text="x", model_id="m").key() != Completion(text="x", model_id="n").key()
    multi = Prompt(
        messages=(
            Message(role="user", content="a"),
            Message(role="assistant", content="b"),
            Message(role="user", content="c"),
        )
    )
    assert multi.is_multi_turn and not one.is_multi_turn
    assert Expert(handle="dr-ng", expertise=frozenset({"cardiology"})).expertise == {"cardiology"}


def test_project_fields_fit_the_store() -> None:
    with pytest.raises(ValidationError, match="currency"):
        Project(name="x", currency="EURO")
    with pytest.raises(ValidationError, match="name"):
        Project(name="n" * 201)
    with pytest.raises(ValidationError, match="pay_rate_per_hour"):
        Project(name="x", pay_rate_per_hour=Decimal("12.345"))
