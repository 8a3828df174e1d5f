"""The queue and judging services: leases, overlap, NDA, qualification, gold, blinding."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tutelage.records import TaskKind
from tutelage.store import Store
from tutelage.store.projects import project_record
from tutelage.store.tables import ComparisonRow, CompletionRow, ProjectRow
from tutelage.store.workspace_tables import AssignmentRow, AuditRow, ItemRow, RenderedAnswerRow
from tutelage.workspace.errors import Conflict, NeedsNda, NeedsQualification, NotFound
from tutelage.workspace.items import build_items, mark_known_answers
from tutelage.workspace.judging import submit_judgment
from tutelage.workspace.membership import accept_nda, update_project
from tutelage.workspace.queue import next_task, own_assignment_with_item, skip_task
from tutelage.workspace.rendering import render_markdown
from tutelage.workspace.stats import expert_stats, project_stats
from tutelage.workspace.submissions import ComparisonSubmission
from tutelage.workspace.views import render_answers, task_view
from workspace_fixtures import World, make_world

PICK_A = ComparisonSubmission(choice="a", active_seconds=90)


def take(world: World, expert: int = 0, **kwargs: object) -> AssignmentRow | None:
    with world.store.session() as session:
        return next_task(
            session, actor=world.experts[expert], project_id=world.project_id, **kwargs
        )  # type: ignore[arg-type]


def submit(world: World, assignment_id: int, expert: int = 0, key: str | None = None) -> dict:
    with world.store.session() as session:
        return submit_judgment(
            session,
            actor=world.experts[expert],
            assignment_id=assignment_id,
            submission=PICK_A,
            idempotency_key=key,
        )


def test_an_expert_works_through_the_queue_once_per_item(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=3, overlap=2)
    seen = []
    while (assignment := take(world)) is not None:
        assert take(world).id == assignment.id  # a refresh gets the same lease back
        submit(world, assignment.id)
        seen.append(assignment.item_id)
    assert len(seen) == len(set(seen)) == 3
    with store.session() as session:
        assert session.scalar(select(func.count(ComparisonRow.id)).where(
            ComparisonRow.expert_id == world.experts[0].user_id)) == 3  # fmt: skip


def test_items_closest_to_completion_come_first(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=3, overlap=2)
    first = take(world, expert=0)
    assert first is not None
    submit(world, first.id, expert=0)
    second = take(world, expert=1)
    assert second is not None and second.item_id == first.item_id


def test_the_last_slot_goes_to_one_expert_only(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=1, experts=8, overlap=1)
    results: list[int | None] = []
    barrier = threading.Barrier(len(world.experts))

    def ask(index: int) -> None:
        barrier.wait()
        assignment = take(world, expert=index)
        results.append(None if assignment is None else assignment.item_id)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(world.experts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for item in results if item is not None) == 1
    with store.session() as session:
        item = session.scalars(select(ItemRow)).one()
        assert (item.leased, item.judged) == (1, 0)


def change_nda(world: World, text: str) -> None:
    with world.store.session() as session:
        project = session.get(ProjectRow, world.project_id)
        assert project is not None
        changed = project_record(project).model_copy(update={"nda_text": text})
        update_project(session, actor=world.admin, project_id=world.project_id, project=changed)


def test_no_item_before_the_current_nda_is_accepted(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, sign_nda=False)
    with pytest.raises(NeedsNda):
        take(world)
    with store.session() as session:
        accept_nda(session, actor=world.experts[0], project_id=world.project_id)
    assert take(world) is not None
    change_nda(world, "New terms.")
    with pytest.raises(NeedsNda):
        take(world)
    with store.session() as session:
        actions = list(session.scalars(select(AuditRow.action).order_by(AuditRow.id)))
    assert actions.count("nda.accept") == 1
    assert "nda.change" in actions and "project.update" in actions
    with store.session() as session:
        accept_nda(session, actor=world.experts[0], project_id=world.project_id)
    assert take(world) is not None
    # back to the first text, which this expert accepted before the one they accepted last
    change_nda(world, "Keep it confidential.")
    assert take(world) is not None
    with pytest.raises(NeedsNda):
        take(world, expert=1)  # who never accepted it


def test_qualification_gates_real_tasks(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=6, qualification_pass_mark=1.0)
    with store.session() as session:
        made = mark_known_answers(
            session, project_id=world.project_id, purpose="qualification", count=2,
            actor_id=world.admin.user_id,
        )  # fmt: skip
    assert made == 2
    # expert 0 answers right (picks the known winner), expert 1 picks the loser
    for expert, right in ((0, True), (1, False)):
        for _ in range(2):
            assignment = take(world, expert=expert)
            assert assignment is not None
            with store.session() as session:
                item = session.get(ItemRow, assignment.item_id)
                assert item is not None and item.purpose == "qualification"
                winner_shown_first = assignment.shown_order[0] == item.gold_answer["winner"]
                choice = "a" if winner_shown_first == right else "b"
                submit_judgment(
                    session, actor=world.experts[expert], assignment_id=assignment.id,
                    submission=ComparisonSubmission(choice=choice),
                )  # fmt: skip
    task = take(world, expert=0)
    assert task is not None
    with store.session() as session:
        assert session.get(ItemRow, task.item_id).purpose == "task"  # type: ignore[union-attr]
    with pytest.raises(NeedsQualification, match="below the pass mark"):
        take(world, expert=1)


def test_gold_items_are_mixed_in_and_scored(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=6, gold_rate=0.5)
    with store.session() as session:
        mark_known_answers(
            session, project_id=world.project_id, purpose="gold", count=3,
            actor_id=world.admin.user_id,
        )  # fmt: skip
    rng = random.Random(0)
    purposes = []
    while (assignment := take(world, rng=rng)) is not None:
        with store.session() as session:
            item = session.get(ItemRow, assignment.item_id)
            assert item is not None
            purposes.append(item.purpose)
            view = task_view(session, assignment=assignment)
            assert "gold" not in str(view.as_json())  # gold items look like any other
        submit(world, assignment.id)
    assert purposes.count("gold") == 3 and purposes.count("task") == 6
    with store.session() as session:
        stats = expert_stats(
            session, project_id=world.project_id, user_id=world.experts[0].user_id,
            handle="expert0",
        )  # fmt: skip
    assert stats.gold_answered == 3 and stats.gold_accuracy is not None
    assert stats.items == 9 and stats.hours == pytest.approx(9 * 90 / 3600)
    assert str(stats.earnings) == "27.00"  # 0.225 h x 120


def test_a_view_is_blinded_and_the_order_random(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=1, experts=12, overlap=12)
    first_shown = set()
    for index in range(12):
        assignment = take(world, expert=index)
        assert assignment is not None
        with store.session() as session:
            view = task_view(session, assignment=assignment).as_json()
        assert "unknown" not in str(view) and "model" not in str(view)
        assert "expert" not in str(view)
        first_shown.add(view["answers"][0]["text"])
        submit(world, assignment.id, expert=index)
    assert first_shown == {"Good answer 0.", "Bad answer 0."}
    with store.session() as session:
        stored = session.scalars(select(ComparisonRow).where(ComparisonRow.expert_id.is_not(None)))
        for row in stored:  # choice "a" means whatever was shown first, mapped back
            assert row.completion_a_id == row.shown["order"][0] and row.outcome == "a"


def test_a_repeated_idempotency_key_stores_one_judgment(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=2)
    assignment = take(world)
    assert assignment is not None
    first = submit(world, assignment.id, key="k-1")
    again = submit(world, assignment.id, key="k-1")
    assert again == first
    with pytest.raises(Conflict):
        submit(world, assignment.id, key="k-2")  # the same item cannot be judged twice
    with store.session() as session:
        assert session.scalar(select(func.count(ComparisonRow.id)).where(
            ComparisonRow.expert_id.is_not(None))) == 1  # fmt: skip


def test_a_key_sent_before_with_another_judgment_stores_nothing(
    store: Store, tmp_path: Path
) -> None:
    world = make_world(store, tmp_path, pairs=2)
    first = take(world)
    assert first is not None
    submit(world, first.id, key="k-1")
    second = take(world)
    assert second is not None and second.id != first.id
    with pytest.raises(Conflict, match="sent before with another request"):
        submit(world, second.id, key="k-1")
    with store.session() as session:
        assert session.scalar(select(func.count(ComparisonRow.id)).where(
            ComparisonRow.expert_id.is_not(None))) == 1  # fmt: skip
        still_open = session.get(AssignmentRow, second.id)
        assert still_open is not None and still_open.status == "leased"
    assert submit(world, second.id, key="k-2")["assignment_id"] == second.id


def test_a_claim_sees_the_item_as_stored_when_its_transaction_loaded_it_before(
    store: Store, tmp_path: Path
) -> None:
    """Group commit runs several experts' requests in one transaction: a submit that
    loaded an item, then another expert's claim of the same item's second slot."""
    world = make_world(store, tmp_path, pairs=1, overlap=2)
    mine = take(world, expert=0)
    assert mine is not None
    with store.session() as session:
        # held, as a request of the same group may still hold it
        _, loaded = own_assignment_with_item(session, actor=world.experts[0], assignment_id=mine.id)
        submit_judgment(session, actor=world.experts[0], assignment_id=mine.id, submission=PICK_A)
        theirs = next_task(session, actor=world.experts[1], project_id=world.project_id)
        assert theirs is not None and theirs.item_id == mine.item_id
        assert theirs.item is loaded and (loaded.judged, loaded.leased) == (1, 1)
        assert task_view(session, assignment=theirs).assignment_id == theirs.id
    with store.session() as session:
        item = session.get(ItemRow, mine.item_id)
        assert item is not None and (item.judged, item.leased) == (1, 1)


def test_answers_are_rendered_once_when_items_are_built_and_only_current_html_is_shown(
    store: Store, tmp_path: Path
) -> None:
    world = make_world(store, tmp_path, pairs=1)
    assignment = take(world)
    assert assignment is not None
    first, second = assignment.shown_order
    with store.session() as session:
        stored = dict(
            session.execute(select(RenderedAnswerRow.completion_id, RenderedAnswerRow.html)).all()
        )
        texts = dict(session.execute(select(CompletionRow.id, CompletionRow.text)).all())
        assert stored == {i: str(render_markdown(texts[i])) for i in (first, second)}
        # shown from storage: a marker put in the stored HTML shows up in the view
        session.execute(
            update(RenderedAnswerRow)
            .where(RenderedAnswerRow.completion_id == first)
            .values(html="<p>stored</p>")
        )
        view = task_view(session, assignment=session.get(AssignmentRow, assignment.id))
        assert view.answers[0].html == "<p>stored</p>"
        # HTML from another renderer (an older sanitiser, say) is never shown...
        session.execute(
            update(RenderedAnswerRow)
            .where(RenderedAnswerRow.completion_id == first)
            .values(renderer="0123456789abcdef")
        )
        view = task_view(session, assignment=session.get(AssignmentRow, assignment.id))
        assert view.answers[0].html == str(render_markdown(texts[first]))
        # ...and the next build of the project's items, which adds none, replaces it
        built = build_items(
            session, project_id=world.project_id, kinds=(TaskKind.COMPARISON,), actor_id=None
        )
        assert built.created == {}
        assert render_answers(session, [first, second]) == 0  # nothing stale is left
    with store.session() as session:
        row = session.get(RenderedAnswerRow, first)
        assert row is not None and row.html == str(render_markdown(texts[first]))


def test_skip_returns_the_item_to_others(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=1, overlap=1)
    assignment = take(world, expert=0)
    assert assignment is not None
    assert take(world, expert=1) is None  # the only slot is leased
    with store.session() as session:
        skip_task(session, actor=world.experts[0], assignment_id=assignment.id, reason="unclear")
    assert take(world, expert=0) is None  # never the same item again
    assert take(world, expert=1) is not None


def test_an_expired_lease_returns_to_the_queue(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=1, overlap=1)
    assignment = take(world, expert=0)
    assert assignment is not None
    with store.session() as session:
        session.execute(
            update(AssignmentRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert take(world, expert=1) is not None
    with pytest.raises(Conflict, match="ran out"):
        submit(world, assignment.id, expert=0)


def test_a_held_lease_comes_back_while_others_expire(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=2, overlap=1)
    mine, theirs = take(world, expert=0), take(world, expert=1)
    assert mine is not None and theirs is not None
    with store.session() as session:
        session.execute(
            update(AssignmentRow)
            .where(AssignmentRow.id == theirs.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    again = take(world, expert=0)
    assert again is not None and again.id == mine.id
    with store.session() as session:
        expired = session.get(AssignmentRow, theirs.id)
        assert expired is not None and expired.status == "expired"
        item = session.get(ItemRow, theirs.item_id)
        assert item is not None and item.leased == 0


def test_experts_cannot_touch_others_assignments(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=2)
    assignment = take(world, expert=0)
    assert assignment is not None
    with pytest.raises(NotFound):
        submit(world, assignment.id, expert=1)


def test_admin_sees_cost_and_progress(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=4, overlap=2)
    for expert in (0, 1):
        assignment = take(world, expert=expert)
        assert assignment is not None
        submit(world, assignment.id, expert=expert)
    with store.session() as session:
        stats = project_stats(session, project_id=world.project_id)
    assert stats.progress["items"] == 4 and stats.progress["judgments"] == 2
    assert stats.progress["done"] == 1  # both experts judged the same (closest) item
    assert str(stats.cost_so_far) == "6.00" and str(stats.cost_per_judgment) == "3.00"
    assert str(stats.projected_cost_to_finish) == "18.00"  # 6 more judgments


def test_an_invitation_to_an_unknown_project_is_refused(store: Store, tmp_path: Path) -> None:
    from tutelage.workspace.accounts import invite
    from tutelage.workspace.errors import WorkspaceError

    world = make_world(store, tmp_path, pairs=1)
    with pytest.raises(NotFound), store.session() as session:
        invite(session, actor_id=world.admin.user_id, email="x@example.org", project_id=999)
    with pytest.raises(WorkspaceError, match="e-mail"), store.session() as session:
        invite(session, actor_id=world.admin.user_id, email="not-an-address")
