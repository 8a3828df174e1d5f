"""The quality pages in a real browser on the demo store: an admin reads the figures and
the heatmap, recomputes, excludes the label flipper and undoes it; a reviewer decides an
item of the adjudication queue."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from tutelage.demo.workspace import DEMO_LOGINS
from tutelage.store import Store
from tutelage.store.quality_tables import AdjudicationRow, ConsensusLabelRow, ExclusionRow
from tutelage.store.workspace_tables import AuditRow

# One worker runs every browser test, so they share the server, its store and the browser.
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

LOGINS = {login.role: login for login in DEMO_LOGINS}
FLIPPER = "demo-expert-5"
REASON = "Agrees with the others on fewer items than chance would: swaps A and B."


def shoot(page: Page, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def sign_in(page: Page, role: str) -> None:
    login = LOGINS[role]
    page.goto("/login")
    page.get_by_label("E-mail address").fill(login.email)
    page.get_by_label("Password").fill(login.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My projects")).to_be_visible()


def wait_for_image(page: Page, selector: str) -> int:
    """Wait until the image has loaded; return its natural width (0 if it failed)."""
    page.wait_for_function("selector => document.querySelector(selector)?.complete", arg=selector)
    width: int = page.locator(selector).evaluate("image => image.naturalWidth")
    return width


def test_an_admin_reads_quality_and_excludes_then_a_reviewer_adjudicates(
    page: Page,
    demo_store: Store,
    screenshots: Path,
    outside_requests: list[str],
    page_errors: list[str],
) -> None:
    sign_in(page, "admin")
    page.locator(".topnav").get_by_role("link", name="Admin").click()
    page.get_by_role("link", name="demo", exact=True).click()
    page.get_by_role("link", name="Quality", exact=True).click()
    expect(page.get_by_role("heading", name="Quality of demo")).to_be_visible()
    assert wait_for_image(page, "#heatmap") > 0
    assert wait_for_image(page, "#trust-chart") > 0
    statistics = page.locator("#statistics")
    expect(statistics).to_contain_text("Krippendorff's alpha, outcome (nominal)")
    expect(statistics).to_contain_text(re.compile(r"-?\d\.\d{3} to -?\d\.\d{3}"))
    reliability = page.locator("#reliability")
    for number in range(1, 6):
        expect(reliability).to_contain_text(f"demo-expert-{number}")
    expect(page.locator("#flags")).to_contain_text("too little time to read both answers")

    page.get_by_role("button", name="Recompute").click()
    expect(page.locator(".notice.success")).to_contain_text("consensus labels stored")
    assert wait_for_image(page, "#heatmap") > 0
    shoot(page, screenshots, "quality")

    exclude = page.locator("#exclude")
    exclude.get_by_label("Expert").select_option(FLIPPER)
    exclude.get_by_label("Why").fill(REASON)
    exclude.get_by_role("button", name="Exclude").click()
    expect(page.locator(".notice.success")).to_contain_text(f"Excluded {FLIPPER}'s judgments")
    listed = page.locator("#exclusion-list tbody tr").first
    expect(listed).to_contain_text(FLIPPER)
    expect(listed).to_contain_text(REASON)
    expect(listed).to_contain_text("in force")
    expect(page.locator(".stale")).to_contain_text(f"{FLIPPER} excluded")
    shoot(page, screenshots, "quality-excluded")

    page.once("dialog", lambda dialog: dialog.accept())  # "Count ...'s judgments again?"
    listed.get_by_role("button", name="Undo").click()
    expect(page.locator(".notice.success")).to_contain_text(f"{FLIPPER}'s judgments count again")
    expect(page.locator("#exclusion-list tbody tr").first).not_to_contain_text("in force")
    expect(page.locator(".stale")).to_have_count(0)
    with demo_store.session() as session:
        exclusion = session.scalar(select(ExclusionRow))
        assert exclusion is not None and exclusion.reason == REASON
        assert exclusion.lifted_at is not None
        actions = session.scalars(
            select(AuditRow.action).where(AuditRow.action.startswith("quality."))
        ).all()
        assert sorted(actions) == ["quality.exclude", "quality.include"]

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "reviewer")
    page.locator(".topnav").get_by_role("link", name="Review").click()
    page.get_by_role("link", name="demo", exact=True).click()
    page.get_by_role("button", name="I accept").click()  # the project's NDA, once
    waiting = int(page.locator("#waiting").inner_text())
    assert waiting > 0
    first = page.locator("article.queue-item").first
    item = int(first.get_attribute("data-item") or 0)
    expect(first.locator(".answer")).to_have_count(2)
    expect(first.locator("table.judgments tbody tr").first).to_be_visible()
    shoot(page, screenshots, "adjudication")
    html = page.content()
    for handle in [f"demo-expert-{n}" for n in range(1, 6)] + ["dr-demo", "@demo.tutelage"]:
        assert handle not in html, handle

    first.get_by_label("B is better").check()
    first.get_by_label("Note").fill("B is the safer answer.")
    first.get_by_role("button", name=f"Decide item {item}").click()
    expect(page.locator(".notice.success")).to_contain_text(f"Item {item}: decided")
    expect(page.locator(f'article[data-item="{item}"]')).to_have_count(0)
    if waiting > 1:
        expect(page.locator("#waiting")).to_have_text(str(waiting - 1))
    with demo_store.session() as session:
        decision = session.scalar(select(AdjudicationRow).where(AdjudicationRow.item_id == item))
        assert decision is not None and (decision.label, decision.note) == (
            "b",
            "B is the safer answer.",
        )
        stored = session.scalar(select(ConsensusLabelRow).where(ConsensusLabelRow.item_id == item))
        assert stored is not None and (stored.label, stored.method) == ("b", "adjudication")
    assert outside_requests == []
    assert page_errors == []
