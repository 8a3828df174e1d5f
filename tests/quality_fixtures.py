"""Building blocks for quality tests: experts judging through the real workspace services."""

from __future__ import annotations

from sqlalchemy import select, update

from tutelage.store.workspace_tables import AssignmentRow, ItemRow
from tutelage.workspace.accounts import Actor, create_user
from tutelage.workspace.judging import submit_judgment
from tutelage.workspace.queue import next_task
from tutelage.workspace.submissions import ComparisonSubmission
from workspace_fixtures import PASSWORD, World, actor_of

FLIP = {"a": "b", "b": "a"}


def judge(
    world: World,
    expert: int,
    canonical: dict[int, str],
    *,
    swap: bool | None = None,
    rationale: str = "",
) -> dict[int, tuple[int, bool]]:
    """Let one expert judge every item they are served, answering `canonical[item]`.

    `swap` forces the shown order (True: the item's second answer shown as A). Returns
    item -> (comparison id, whether it was shown swapped).
    """
    done = {}
    actor = world.experts[expert]
    while True:
        with world.store.session() as session:
            assignment = next_task(session, actor=actor, project_id=world.project_id)
            if assignment is None:
                return done
            item = session.get(ItemRow, assignment.item_id)
            assert item is not None
            first, second = item.completion_ids
            if swap is not None:
                order = [second, first] if swap else [first, second]
                session.execute(
                    update(AssignmentRow)
                    .where(AssignmentRow.id == assignment.id)
                    .values(shown_order=order)
                )
                session.expire_all()
            order = list(session.get(AssignmentRow, assignment.id).shown_order)  # type: ignore[union-attr]
            swapped = order[0] != first
            label = canonical[item.id]
            shown = FLIP.get(label, label) if swapped else label
            receipt = submit_judgment(
                session,
                actor=actor,
                assignment_id=assignment.id,
                submission=ComparisonSubmission(
                    choice=shown, strength="clear", rationale=rationale, active_seconds=60
                ),
            )
            done[item.id] = (receipt["judgment_ids"][0], swapped)


def item_ids(world: World) -> list[int]:
    with world.store.session() as session:
        return list(
            session.scalars(
                select(ItemRow.id)
                .where(ItemRow.project_id == world.project_id)
                .order_by(ItemRow.id)
            )
        )


def reviewer(world: World) -> Actor:
    with world.store.session() as session:
        return actor_of(
            create_user(
                session,
                email="reviewer@example.org",
                password=PASSWORD,
                handle="reviewer",
                role="reviewer",
            )
        )
