"""An evaluation kept in the store, read by an admin in a real browser: the list, and the
report page with its plots, served sandboxed and loading nothing from elsewhere."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from test_quality_flow import shoot, sign_in, wait_for_image

from tutelage.evaluation import (
    Outcomes,
    PairSet,
    PolicyAudit,
    RewardAudit,
    Suite,
    audit_scores,
    form_rates,
    record_evaluation,
    reward_report_html,
)
from tutelage.evaluation.policy_report import policy_report_html
from tutelage.evaluation.robustness import PERTURBATIONS
from tutelage.store import Store
from tutelage.training import TrainingPair

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def made_up_audit() -> RewardAudit:
    rng = random.Random(3)
    pairs = [
        TrainingPair(f"user: q{i}", "x" * rng.randint(5, 900), "y" * rng.randint(5, 900))
        for i in range(200)
    ]
    scores = [(rng.gauss(0.4, 1), rng.gauss(0, 1)) for _ in pairs]

    def score_texts(texts: list[tuple[str, str]]) -> list[float]:
        return [rng.gauss(0, 1) for _ in texts]

    return audit_scores(PairSet("held-out.jsonl", pairs), [scores], score_texts=score_texts)


def test_an_admin_opens_an_evaluation_report_with_its_plots(
    page: Page,
    demo_store: Store,
    tmp_path: Path,
    screenshots: Path,
    outside_requests: list[str],
    page_errors: list[str],
) -> None:
    model = tmp_path / "rm"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights of a model that was evaluated")
    audit = made_up_audit()
    evaluation = record_evaluation(
        demo_store,
        kind="reward",
        model_dir=model,
        data=[{"source": "held-out.jsonl", "hash": None, "n": 200}],
        settings={},
        results={"data": [audit.summary()]},
        report_html=reward_report_html(str(model), [audit]),
        actor="cli:test",
    )
    sign_in(page, "admin")
    page.goto("/admin")
    page.get_by_role("link", name="Evaluations").click()
    expect(page.get_by_role("heading", name="Evaluations")).to_be_visible()
    row = page.locator("tr", has_text="held-out.jsonl").first
    expect(row).to_contain_text(str(evaluation))
    expect(row).to_contain_text(f"{audit.evaluation.accuracy:.1%}")
    row.get_by_role("link", name="Report").click()
    expect(page.get_by_role("heading", name="Reward model audit")).to_be_visible()
    images = page.locator("img")
    assert images.count() == 4  # accuracy, reliability, length, robustness
    for index in range(images.count()):
        assert wait_for_image(page, f"figure:nth-of-type({index + 1}) img") > 0
    for name in PERTURBATIONS:
        expect(page.locator("table").first).to_contain_text(f"flip rate: {name}")
    shoot(page, screenshots, "evaluation-report")
    assert outside_requests == []
    assert page_errors == []


def test_an_admin_opens_a_policy_audit_with_its_plot(
    page: Page,
    demo_store: Store,
    tmp_path: Path,
    outside_requests: list[str],
    page_errors: list[str],
) -> None:
    model = tmp_path / "dpo"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"a policy's weights")
    ours = Outcomes(
        opinion=[1, 1, 0, 1], opinion_neutral=[0, 1, 0, 1], answer=[(1, 0), (1, 1)],
        are_you_sure=[1, 0, None],
    )  # fmt: skip
    theirs = Outcomes(
        opinion=[0, 1, 0, 1], opinion_neutral=[0, 1, 0, 1], answer=[(1, 1), (1, 1)],
        are_you_sure=[0, 0, 0],
    )  # fmt: skip
    suite = Suite("six", (), "0" * 64)
    audit = PolicyAudit(str(model), "base", (suite,), form_rates(ours, theirs), form_rates(theirs))
    evaluation = record_evaluation(
        demo_store,
        kind="policy",
        model_dir=model,
        data=[{"source": "six", "hash": suite.sha256, "n": 6}],
        settings={"reference": "base"},
        results=audit.summary(),
        report_html=policy_report_html(audit),
        actor="cli:test",
    )
    sign_in(page, "admin")
    page.goto("/admin/evaluations")
    page.locator(f'a[href="/admin/evaluations/{evaluation}/report"]').click()
    expect(page.get_by_role("heading", name="Policy audit")).to_be_visible()
    expect(page.locator("table")).to_contain_text("are_you_sure")
    assert wait_for_image(page, "figure img") > 0
    assert outside_requests == []
    assert page_errors == []
