"""Bias by expert group and drift over time, against numbers worked by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from quality_fixtures import judge
from tutelage.quality.bias import expert_drift, group_bias, hedges
from tutelage.quality.persist import analyse_project
from tutelage.quality.report import report_json
from tutelage.store import Store
from tutelage.store.tables import UserRow
from tutelage.store.workspace_tables import ItemRow
from workspace_fixtures import make_world


def frame(rows: list[tuple[int, int, str, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["judgment_id", "item", "worker", "label", "first", "second"])


# Item i shows completion 2i (long, hedged, by model "big") first and 2i+1 (short) second.
TEXTS = {2 * i: "It may depend; you might consult a doctor, perhaps. " * 3 for i in range(10)}
TEXTS |= {2 * i + 1: "Take rest." for i in range(10)}
MODELS = {c: ("big" if c % 2 == 0 else "small") for c in TEXTS}


def test_a_group_that_prefers_long_hedged_answers_is_found() -> None:
    rows = []
    for i in range(10):
        rows.append((3 * i, i, "expert:1", "a", 2 * i, 2 * i + 1))  # always the long one
        rows.append((3 * i + 1, i, "expert:2", "b", 2 * i, 2 * i + 1))  # always the short
        rows.append((3 * i + 2, i, "expert:3", "b" if i else "tie", 2 * i, 2 * i + 1))
    groups = {"expert:1": ["medicine"], "expert:2": ["law"], "expert:3": ["law"]}
    found = {
        (b.group, b.feature): b
        for b in group_bias(frame(rows), texts=TEXTS, models=MODELS, groups=groups)
    }
    medicine = found[("medicine", "longer answer")]
    # 10 of 10 long against 0 of 19 (expert 3's tie is not a choice)
    assert (medicine.choices, medicine.share, medicine.others_choices, medicine.others) == (
        10, 1.0, 19, 0.0,
    )  # fmt: skip
    assert medicine.effect_h == pytest.approx(math.pi)  # 2 asin(1) - 2 asin(0)
    assert medicine.p_value == pytest.approx(1 / math.comb(29, 10))  # Fisher, all one way
    assert found[("law", "longer answer")].effect_h == pytest.approx(-math.pi)
    assert found[("medicine", "more hedged answer")].share == 1.0
    assert found[("medicine", "answer by big")].share == 1.0
    assert found[("law", "answer by small")].share == 1.0
    # no tags, no groups
    assert group_bias(frame(rows), texts=TEXTS, models=MODELS, groups={}) == []


def test_hedging_phrases_are_counted() -> None:
    assert hedges("It may be fine, but it depends. Consult a doctor; I think so.") == 4
    assert hedges("Yes.") == 0


def test_an_expert_whose_agreement_falls_is_drifting() -> None:
    consensus = {i: "a" for i in range(40)}
    rows = [(i, i, "expert:7", "a" if i < 20 else "b", 0, 1) for i in range(40)]
    rows += [(100 + i, i, "expert:8", "a" if i % 4 else "b", 0, 1) for i in range(40)]
    rows += [(200 + i, i, "expert:9", "a", 0, 1) for i in range(10)]  # too few to tell
    found = {d.worker: d for d in expert_drift(frame(rows), consensus)}
    assert set(found) == {"expert:7", "expert:8"}
    falling, steady = found["expert:7"], found["expert:8"]
    assert (falling.first_half, falling.second_half) == (1.0, 0.0)
    assert falling.drifting and falling.p_value < 1e-6
    # rolling agreement over 20: from 1.0 down to 0.0 in 21 windows
    assert falling.rolling[0] == 1.0 and falling.rolling[-1] == 0.0
    assert len(falling.rolling) == 21
    assert (steady.first_half, steady.second_half) == (0.75, 0.75)
    assert not steady.drifting


def test_the_quality_report_compares_groups_of_experts(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=12, experts=4)
    with store.session() as session:
        items = session.scalars(select(ItemRow.id).where(ItemRow.project_id == world.project_id))
        canonical = {int(i): "a" for i in items}
    for expert in (0, 1):
        judge(world, expert, canonical)  # the first answer, always
    for expert in (2, 3):
        judge(world, expert, {item: "b" for item in canonical})  # the second, always
    with store.session() as session:
        for expert in (2, 3):
            session.get(UserRow, world.experts[expert].user_id).expertise = ["law"]
    quality = analyse_project(store, project="cardio", save=False)
    found = {(b.group, b.feature): b for b in quality.bias}
    cardiology, law = found[("cardiology", "longer answer")], found[("law", "longer answer")]
    # each group always picks one side, so their shares of "the longer one" mirror
    assert cardiology.share == pytest.approx(1 - law.share)
    assert cardiology.others == pytest.approx(law.share)
    report = report_json(quality)
    assert {b["group"] for b in report["bias_by_group"]} == {"cardiology", "law"}
    assert report["drift"] == []  # nobody made the 40 judgments drift needs
