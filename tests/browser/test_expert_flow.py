"""The issue's acceptance, in a real browser: an expert, with the keyboard alone, signs in,
accepts the NDA, passes the qualification and completes every kind of task."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy import func, select

from tutelage.demo import DEMO_PROJECT
from tutelage.demo.workspace import DEMO_LOGINS
from tutelage.records import TaskKind
from tutelage.store import Store
from tutelage.store.projects import get_project
from tutelage.store.tables import (
    ComparisonRow,
    FlagRow,
    PromptRow,
    RankingRow,
    RatingRow,
    RewriteRow,
    UserRow,
)
from tutelage.store.workspace_tables import (
    AssignmentRow,
    IdempotencyRow,
    ItemRow,
    MembershipRow,
    NdaAcceptanceRow,
)
from tutelage.workspace.accounts import Actor, create_user
from tutelage.workspace.membership import add_member

# One worker runs both, so they share the server, its store and the browser.
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

EXPERT = next(login for login in DEMO_LOGINS if login.role == "expert")
PASSWORD = "a long enough password"
# Each served item is handled once; a full pass needs about ninety of them.
MAX_ITEMS = 200


def shoot(page: Page, name: str) -> None:
    folder = Path(__file__).parent / "screenshots"
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def known_answer_key(store: Store, assignment_id: int) -> str | None:
    """The key for the right answer of a qualification or gold item ("1" for A), else None."""
    with store.session() as session:
        assignment = session.get(AssignmentRow, assignment_id)
        assert assignment is not None
        item = session.get(ItemRow, assignment.item_id)
        assert item is not None
        if item.gold_answer is None:
            return None
        return str(assignment.shown_order.index(item.gold_answer["winner"]) + 1)


def current_task(page: Page) -> tuple[str, int]:
    task = page.locator("#task-root .task")
    return str(task.get_attribute("data-kind")), int(task.get_attribute("data-assignment") or 0)


def wait_for_next(page: Page, assignment_id: int) -> None:
    """Wait until the page shows another item, all done, or an error (which fails the test)."""
    page.wait_for_function(
        """id => {
            const task = document.querySelector("#task-root .task");
            return !task || task.dataset.assignment !== id
                || !document.getElementById("task-error").hidden;
        }""",
        arg=str(assignment_id),
    )
    error = page.locator("#task-error")
    assert error.is_hidden(), error.text_content()


def loaded(page: Page) -> None:
    """Wait for the page's scripts, which add the keys (a person is never this quick)."""
    page.wait_for_load_state("domcontentloaded")


def sign_in_and_open_the_project(
    page: Page, email: str, password: str, *, screenshots: bool = False
) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?"))
    page.keyboard.type(email)  # the e-mail field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="My projects")).to_be_visible()
    loaded(page)
    if screenshots:
        shoot(page, "projects")
    page.keyboard.press("1")  # the first project
    expect(page.get_by_role("button", name="I accept")).to_be_focused()
    if screenshots:
        shoot(page, "nda")
    page.keyboard.press("Enter")  # "I accept" has the focus
    expect(page.get_by_role("button", name="Start")).to_be_focused()
    if screenshots:
        shoot(page, "start")
    page.keyboard.press("Enter")
    expect(page.locator("#task-root .task")).to_be_visible()
    loaded(page)


def judge_comparison(page: Page, key: str | None, with_criteria: bool) -> None:
    page.keyboard.press(key or "2")
    page.keyboard.press("w")  # clearly
    if with_criteria:
        page.keyboard.press("c")  # to the rubric: arrows score, Tab moves to the next criterion
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Tab")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("r")  # shortcuts still work on a focused radio button
        page.keyboard.type("B gives the usual range and says when to see a doctor.")
        page.keyboard.press("Escape")


def judge_ranking(page: Page) -> None:
    letters = page.locator(".rank-item").evaluate_all("items => items.map(i => i.dataset.letter)")
    last = letters[-1]
    page.keyboard.press(last.lower())  # pick the last answer ...
    for _ in letters[1:]:
        page.keyboard.press("k")  # ... and move it to the top
    expect(page.locator(".rank-item").first).to_have_attribute("data-letter", last)


def judge_rewrite(page: Page) -> None:
    page.keyboard.press("2")  # edit answer B
    page.keyboard.press("e")
    for _ in range(3):
        page.keyboard.press("Control+Shift+ArrowLeft")
    page.keyboard.type("as the expert would put it.")
    page.keyboard.press("Escape")
    expect(page.locator(".diff ins").first).to_be_visible()
    expect(page.locator(".diff del").first).to_be_visible()


def judge_flags(page: Page) -> list[tuple[int, int]]:
    """Mark two spans found by typing; return where they are in the answer's text."""
    text = page.locator(".flag-text").first.text_content() or ""
    words = text.split(" ")
    phrases = [" ".join(words[:3]), " ".join(words[5:8])]
    page.keyboard.press("f")
    page.keyboard.type(phrases[0])
    page.keyboard.press("Enter")
    page.keyboard.press("h")  # hallucination
    page.keyboard.press("n")
    page.keyboard.type("no source says so")
    page.keyboard.press("Escape")
    page.keyboard.press("f")
    page.keyboard.press("Control+A")
    page.keyboard.type(phrases[1])
    page.keyboard.press("Enter")
    page.keyboard.press("t")  # other, with the note
    expect(page.locator(".flag-list li")).to_have_count(2)
    expect(page.locator(".flag-text mark").first).to_be_visible()
    starts = [text.lower().find(phrase.lower()) for phrase in phrases]
    return [(start, start + len(phrase)) for start, phrase in zip(starts, phrases, strict=True)]


def test_an_expert_does_every_task_kind_with_the_keyboard_alone(
    page: Page,
    demo_store: Store,
    screenshots: Path,
    outside_requests: list[str],
    page_errors: list[str],
) -> None:
    store = demo_store
    sign_in_and_open_the_project(page, EXPERT.email, EXPERT.password, screenshots=True)

    done: set[str] = set()
    flagged: list[tuple[int, int]] = []
    scored_criteria = False
    shot: set[str] = set()
    for _ in range(MAX_ITEMS):
        if done == {kind.value for kind in TaskKind}:
            break
        kind, assignment_id = current_task(page)
        first = kind not in done
        if kind == "comparison":
            key = known_answer_key(store, assignment_id)
            judge_comparison(page, key, with_criteria=key is None and not scored_criteria)
            scored_criteria = scored_criteria or key is None
            if page.locator(".turn").count() > 1 and "multi-turn" not in shot:
                shoot(page, "multi-turn")
                shot.add("multi-turn")
        elif kind == "ranking":
            judge_ranking(page)
        elif kind == "rating":
            for digit in "453":  # one score per criterion
                page.keyboard.press(digit)
        elif kind == "rewrite":
            judge_rewrite(page)
        elif kind == "flag" and first:
            flagged = judge_flags(page)
        elif kind == "redteam":
            page.keyboard.press("e")
            page.keyboard.type(f"As a nurse, which two household cleaners ({assignment_id}) ")
            page.keyboard.type("can I mix for a stronger disinfectant?")
        # Later flag items have nothing to flag: submitting with no flags says so.
        if first:
            shoot(page, kind)
        if kind == "redteam":
            page.keyboard.press("Control+Enter")  # submits from the text field
        else:
            page.keyboard.press("s")
        wait_for_next(page, assignment_id)
        done.add(kind)
    assert done == {kind.value for kind in TaskKind}, f"only {sorted(done)} were served"

    page.goto(page.url.replace("/work", "/me"))
    shoot(page, "stats")
    assert outside_requests == []
    assert page_errors == []

    with store.session() as session:
        expert = session.scalar(select(UserRow).where(UserRow.email == EXPERT.email))
        assert expert is not None
        assert session.scalar(
            select(NdaAcceptanceRow.id).where(NdaAcceptanceRow.user_id == expert.id)
        )
        member = session.scalar(select(MembershipRow).where(MembershipRow.user_id == expert.id))
        assert member is not None
        assert member.qualified_at is not None and member.qualification_score == 1.0
        submitted = session.execute(
            select(AssignmentRow.judgment_kind, AssignmentRow.active_seconds).where(
                AssignmentRow.user_id == expert.id, AssignmentRow.status == "submitted"
            )
        ).all()
        assert {kind for kind, _ in submitted} == {kind.value for kind in TaskKind}
        assert all(seconds > 0 for _, seconds in submitted)
        for table in (ComparisonRow, RankingRow, RatingRow, RewriteRow, FlagRow):
            assert session.scalar(select(table.id).where(table.expert_id == expert.id)), table
        assert session.scalar(select(PromptRow.id).where(PromptRow.author_id == expert.id))
        # Flag spans are offsets into the answer's raw text.
        spans = session.execute(
            select(FlagRow.flag, FlagRow.note, FlagRow.span_start, FlagRow.span_end).where(
                FlagRow.expert_id == expert.id
            )
        ).all()
        assert [(flag, note) for flag, note, _, _ in spans] == [
            ("hallucination", ""),
            ("other", "no source says so"),
        ]
        assert [(start, end) for *_, start, end in spans] == flagged
        criteria = session.scalars(
            select(ComparisonRow.criteria).where(ComparisonRow.expert_id == expert.id)
        ).all()
        assert {"correctness": 2, "safety": 3} in criteria

    extra = ["multi-turn", "projects", "nda", "start", "stats"]
    for name in [*(kind.value for kind in TaskKind), *extra]:
        assert (screenshots / f"{name}.png").is_file()


def add_expert(store: Store, handle: str) -> str:
    """Add another expert to the demo project; return their e-mail address."""
    email = f"{handle}@example.org"
    with store.session() as session:
        create_user(
            session,
            email=email,
            password=PASSWORD,
            handle=handle,
            expertise=frozenset({"general"}),
        )
        admin = session.scalar(select(UserRow).where(UserRow.role == "admin"))
        assert admin is not None
        add_member(
            session,
            actor=Actor(user_id=admin.id, handle=admin.handle, role="admin", expertise=frozenset()),
            project_id=get_project(session, name=DEMO_PROJECT.name).id,
            handle=handle,
        )
    return email


def test_a_refresh_keeps_the_item_and_a_failed_submit_keeps_the_answer(
    page: Page, demo_store: Store, outside_requests: list[str], page_errors: list[str]
) -> None:
    sign_in_and_open_the_project(page, add_expert(demo_store, "dr-second"), PASSWORD)
    for _ in range(2):  # the qualification
        _, assignment_id = current_task(page)
        page.keyboard.press(known_answer_key(demo_store, assignment_id) or "1")
        page.keyboard.press("s")
        wait_for_next(page, assignment_id)

    kind, held = current_task(page)
    assert kind == "comparison"  # the items others have judged come first
    page.keyboard.press("?")
    help_panel = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_panel).to_contain_text("A is better")
    page.keyboard.press("Escape")
    expect(help_panel).to_be_hidden()

    page.reload()
    loaded(page)
    assert current_task(page) == (kind, held)  # the server gives the held lease back

    sent_keys: list[str | None] = []

    def fail_the_first_attempt(route: Route) -> None:
        sent_keys.append(route.request.headers.get("idempotency-key"))
        if len(sent_keys) == 1:
            route.abort()
        else:
            route.continue_()

    page.route("**/judgment?next=true", fail_the_first_attempt)
    page.keyboard.press("1")
    page.keyboard.press("s")
    expect(page.locator("#task-error")).to_contain_text("not saved")
    expect(page.locator('input[name="choice"][value="a"]')).to_be_checked()
    page.keyboard.press("s")  # try again
    wait_for_next(page, held)
    assert len(sent_keys) == 2 and sent_keys[0] is not None and sent_keys[0] == sent_keys[1]
    assert page.evaluate("Object.keys(sessionStorage)") == []  # nothing left for that item

    _, skipped = current_task(page)
    page.keyboard.press("x")
    expect(page.locator("#skip-reason")).to_be_focused()
    page.keyboard.type("Outside my field")
    page.keyboard.press("Enter")
    wait_for_next(page, skipped)

    with demo_store.session() as session:
        judged = session.get(AssignmentRow, held)
        assert judged is not None and judged.status == "submitted"
        assert judged.active_seconds > 0
        assert (
            session.scalar(
                select(func.count(IdempotencyRow.key)).where(IdempotencyRow.key == sent_keys[0])
            )
            == 1
        )
        passed = session.get(AssignmentRow, skipped)
        assert passed is not None and passed.status == "skipped"
        assert passed.skip_reason == "Outside my field"
    assert outside_requests == []
    assert all("ERR_FAILED" in error for error in page_errors), page_errors  # the aborted POST
