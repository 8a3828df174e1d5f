"""The queue: which item an expert gets next, leased to them alone for a while.

An expert gets, in this order: the item they already hold (a refreshed page loses
nothing); qualification items until they have answered them all, when the project
requires qualification; now and then, at the project's gold rate, a gold item; and
otherwise the task item closest to completion that still needs judgments, matches
their expertise, and that they have not judged. Claiming a slot is a conditional
UPDATE (`judged + leased < overlap`), so two experts asking at once cannot both take
the last one.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from tutelage.store import core
from tutelage.store.tables import Base, ProjectRow
from tutelage.store.workspace_tables import AssignmentRow, ItemRow, MembershipRow
from tutelage.workspace import audit
from tutelage.workspace.accounts import Actor
from tutelage.workspace.errors import Conflict, NeedsQualification, NotFound, WorkspaceError
from tutelage.workspace.policy import workable_project

__all__ = [
    "accessible_assignment",
    "held_task",
    "next_task",
    "own_assignment",
    "own_assignment_with_item",
    "queue_counts",
    "release_leases",
    "skip_task",
]


def _now() -> datetime:
    return datetime.now(UTC)


def _expire_leases_and_find_held(
    session: Session, *, actor: Actor, project_id: int, now: datetime
) -> AssignmentRow | None:
    """Return leases past their time to the queue, and return the unexpired lease the
    expert holds in this project, if any: both from one statement."""
    leases = core(session).execute(
        _EXPIRED_OR_HELD, {"project_id": project_id, "user_id": actor.user_id, "now": now}
    )
    held_id = None
    for assignment_id, item_id, user_id, expired in leases.all():
        if expired:
            _release(session, assignment_id, item_id, status="expired", now=now)
        elif held_id is None and user_id == actor.user_id:
            held_id = assignment_id
    return None if held_id is None else session.get(AssignmentRow, held_id)


def _release(
    session: Session,
    assignment_id: int,
    item_id: int,
    *,
    status: str,
    now: datetime,
    reason: str | None = None,
) -> None:
    # through the session: it updates an assignment it holds (`skip_task`'s) too
    released = session.execute(
        _RELEASE,
        {"assignment_id": assignment_id, "status": status, "now": now, "reason": reason},
    )
    if released.rowcount == 1:  # type: ignore[attr-defined]
        session.execute(_UNLEASE, {"item_id": item_id})


# The statements of every next-task call are built once, with parameters: building and
# keying a statement costs SQLAlchemy more than SQLite takes to run it.
_EXPIRED_OR_HELD = (
    select(
        AssignmentRow.id,
        AssignmentRow.item_id,
        AssignmentRow.user_id,
        (AssignmentRow.expires_at < bindparam("now")).label("expired"),
    )
    .where(
        AssignmentRow.project_id == bindparam("project_id"),
        AssignmentRow.status == "leased",
        or_(
            AssignmentRow.expires_at < bindparam("now"),
            AssignmentRow.user_id == bindparam("user_id"),
        ),
    )
    .order_by(AssignmentRow.id)
)
_RELEASE = (
    update(AssignmentRow)
    .where(AssignmentRow.id == bindparam("assignment_id"), AssignmentRow.status == "leased")
    .values(
        status=bindparam("status"), finished_at=bindparam("now"), skip_reason=bindparam("reason")
    )
)
_UNLEASE = (
    update(ItemRow)
    .where(ItemRow.id == bindparam("item_id"), ItemRow.leased > 0)
    .values(leased=ItemRow.leased - 1)
)
_NOT_DONE_BY_USER = ~exists().where(
    and_(AssignmentRow.item_id == ItemRow.id, AssignmentRow.user_id == bindparam("user_id"))
)
_KNOWN_ANSWER_ITEM = (
    select(ItemRow)
    .where(
        ItemRow.project_id == bindparam("project_id"),
        ItemRow.purpose == bindparam("purpose"),
        _NOT_DONE_BY_USER,
    )
    .order_by(ItemRow.id)
    .limit(1)
)
_OPEN_SLOTS = ItemRow.judged + ItemRow.leased
# ("in_project", not "project_id": an UPDATE's parameters may not share a column's name)
_BEST_TASK_ITEM = (
    select(ItemRow.id)
    .where(
        ItemRow.project_id == bindparam("in_project"),
        ItemRow.purpose == "task",
        ItemRow.kind.in_(bindparam("kinds", expanding=True)),
        bindparam("overlap") > _OPEN_SLOTS,
        ItemRow.expertise_tag.is_(None)
        | ItemRow.expertise_tag.in_(bindparam("tags", expanding=True)),
        _NOT_DONE_BY_USER,
    )
    .order_by(_OPEN_SLOTS.desc(), ItemRow.id)
    .limit(1)
)
# PostgreSQL: take the best item no other expert is claiming right now (SKIP LOCKED never
# waits, so claims cannot deadlock). A blocking FOR UPDATE with LIMIT can: a row it waited
# for and then found full stays locked while it moves on to the next, so two claimers can
# each hold the row the other waits for. SQLite has one writer and ignores FOR UPDATE.
_BEST_UNCLAIMED_ITEM = _BEST_TASK_ITEM.with_for_update(skip_locked=True)
# How long a next-task call waits, in short sleeps, while every open item is being claimed.
_CLAIM_RETRY_SECONDS = 0.005
_CLAIM_PATIENCE_SECONDS = 10.0
_ASSIGNMENTS = AssignmentRow.__table__
_NEW_ASSIGNMENT = insert(_ASSIGNMENTS).returning(_ASSIGNMENTS.c.id)  # type: ignore[arg-type]
# The best item is found and claimed in one statement, and the claimed row comes back
# from the UPDATE itself (RETURNING), as it is after the claim. The subquery keeps its own
# FROM (no correlation with the row being updated), so it is run once.
# A Core statement: the ORM's UPDATE ... RETURNING of an entity cost more than the claim.
_ITEMS = Base.metadata.tables[ItemRow.__tablename__]
_CLAIM_BEST = (
    update(_ITEMS)
    .where(
        _ITEMS.c.id == _BEST_UNCLAIMED_ITEM.correlate(None).scalar_subquery(),
        bindparam("overlap") > _ITEMS.c.judged + _ITEMS.c.leased,
    )
    .values(leased=_ITEMS.c.leased + 1)
    .returning(*_ITEMS.c)
)


def _as_loaded(session: Session, row: RowMapping) -> ItemRow:
    """Return the item `row` holds (as stored) in the session, as if loaded by a query:
    the session's own copy refreshed, if it has one (another request of the same
    transaction may have loaded it), or a new one."""
    item = session.identity_map.get(identity_key(ItemRow, row["id"]))
    if isinstance(item, ItemRow):
        for name, value in row.items():
            set_committed_value(item, name, value)
        return item
    item = ItemRow(**row)
    make_transient_to_detached(item)
    session.add(item)
    return item


def _lease(
    session: Session,
    *,
    actor: Actor,
    project: ProjectRow,
    item: ItemRow,
    rng: random.Random,
    now: datetime,
) -> AssignmentRow:
    order = list(item.completion_ids)
    rng.shuffle(order)  # blinding: which answer is A is random per assignment, and recorded
    values = {
        "item_id": item.id,
        "user_id": actor.user_id,
        "project_id": project.id,
        "status": "leased",
        "shown_order": order,
        "leased_at": now,
        "expires_at": now + timedelta(seconds=project.lease_seconds),
        "finished_at": None,
        "skip_reason": None,
        "active_seconds": 0.0,
        "judgment_kind": None,
        "judgment_id": None,
        "correct": None,
    }
    # A Core INSERT and the row handed to the session as stored: the ORM's unit of work
    # cost more than the rest of the lease.
    assignment_id = session.connection().execute(_NEW_ASSIGNMENT, values).scalar_one()
    assignment = AssignmentRow(id=assignment_id, **values)
    make_transient_to_detached(assignment)
    session.add(assignment)
    set_committed_value(assignment, "item", item)
    set_committed_value(assignment, "project", project)
    return assignment


def _known_answer_item(
    session: Session, *, actor: Actor, project: ProjectRow, purpose: str
) -> ItemRow | None:
    return session.scalar(
        _KNOWN_ANSWER_ITEM,
        {"project_id": project.id, "purpose": purpose, "user_id": actor.user_id},
    )


def _claim_task_item(session: Session, *, actor: Actor, project: ProjectRow) -> ItemRow | None:
    parameters = {
        "in_project": project.id,
        "kinds": list(project.task_kinds),
        "overlap": project.overlap,
        "tags": sorted(actor.expertise),
        "user_id": actor.user_id,
    }
    waited = 0.0
    while True:
        claimed = core(session).execute(_CLAIM_BEST, parameters).first()
        if claimed is not None:
            return _as_loaded(session, claimed._mapping)
        # Nothing unclaimed: "nothing left" only if no open item exists at all; otherwise
        # the open ones are being claimed this instant, and one may still have a slot once
        # those claims commit, so look again shortly.
        if core(session).scalar(_BEST_TASK_ITEM, parameters) is None:
            return None
        if waited >= _CLAIM_PATIENCE_SECONDS:
            raise Conflict("the queue is busier than it should be: ask for the next task again")
        time.sleep(_CLAIM_RETRY_SECONDS)
        waited += _CLAIM_RETRY_SECONDS


def _qualification_open(session: Session, project: ProjectRow, member: MembershipRow) -> bool:
    if project.qualification_pass_mark is None or member.qualified_at is not None:
        return False
    if member.qualification_score is not None:
        raise NeedsQualification(
            f"your qualification score {member.qualification_score:.0%} is below the pass "
            f"mark {project.qualification_pass_mark:.0%}; an admin can let you try again"
        )
    return True


def next_task(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    rng: random.Random | None = None,
) -> AssignmentRow | None:
    """Return the expert's lease on their next item, or None when nothing is left for them."""
    project, member = workable_project(session, actor=actor, project_id=project_id)
    rng = rng or random.Random()
    now = _now()
    held = _expire_leases_and_find_held(session, actor=actor, project_id=project.id, now=now)
    if held is not None:
        return held
    if _qualification_open(session, project, member):
        item = _known_answer_item(session, actor=actor, project=project, purpose="qualification")
        if item is None:
            raise NeedsQualification("the project's qualification has no items yet")
        return _lease(session, actor=actor, project=project, item=item, rng=rng, now=now)
    if project.gold_rate > 0 and rng.random() < project.gold_rate:
        item = _known_answer_item(session, actor=actor, project=project, purpose="gold")
        if item is not None:
            return _lease(session, actor=actor, project=project, item=item, rng=rng, now=now)
    item = _claim_task_item(session, actor=actor, project=project)
    if item is None:
        return None
    return _lease(session, actor=actor, project=project, item=item, rng=rng, now=now)


def held_task(session: Session, *, actor: Actor, project_id: int) -> AssignmentRow | None:
    """The unexpired lease the expert holds in the project, if any, changing nothing: what a
    GET may show. Refused as `next_task` would be (no member, NDA, failed qualification)."""
    project, member = workable_project(session, actor=actor, project_id=project_id)
    _qualification_open(session, project, member)  # raises when the qualification failed
    return session.scalars(
        select(AssignmentRow)
        .where(
            AssignmentRow.project_id == project.id,
            AssignmentRow.user_id == actor.user_id,
            AssignmentRow.status == "leased",
            AssignmentRow.expires_at >= _now(),
        )
        .order_by(AssignmentRow.id)
        .limit(1)
    ).first()


def own_assignment(session: Session, *, actor: Actor, assignment_id: int) -> AssignmentRow:
    """Return the expert's own assignment; anyone else's is "not found"."""
    assignment = session.get(AssignmentRow, assignment_id)
    if assignment is None or assignment.user_id != actor.user_id:
        raise NotFound(f"no assignment {assignment_id}")
    return assignment


def accessible_assignment(session: Session, *, actor: Actor, assignment_id: int) -> AssignmentRow:
    """The expert's own assignment, if they may still see its item: member of the project
    now, its current NDA accepted, the expertise it needs (`workable_project`). Reading
    and skipping go through this, as submitting does: under NDA, reading is what is
    guarded, and a removed member or a changed NDA ends it at once."""
    assignment = own_assignment(session, actor=actor, assignment_id=assignment_id)
    workable_project(session, actor=actor, project_id=assignment.project_id)
    return assignment


def release_leases(session: Session, *, project_id: int, user_id: int, reason: str) -> int:
    """Give back to the queue every item `user_id` holds in the project (as expired, with
    `reason`); returns how many."""
    held = session.execute(
        select(AssignmentRow.id, AssignmentRow.item_id).where(
            AssignmentRow.project_id == project_id,
            AssignmentRow.user_id == user_id,
            AssignmentRow.status == "leased",
        )
    ).all()
    now = _now()
    for assignment_id, item_id in held:
        _release(session, assignment_id, item_id, status="expired", now=now, reason=reason)
    return len(held)


_WITH_ITEM = (
    select(AssignmentRow, ItemRow)
    .join(ItemRow, ItemRow.id == AssignmentRow.item_id)
    .where(AssignmentRow.id == bindparam("assignment_id"))
)


def own_assignment_with_item(
    session: Session, *, actor: Actor, assignment_id: int
) -> tuple[AssignmentRow, ItemRow]:
    """`own_assignment` and its item, in one statement."""
    row = session.execute(_WITH_ITEM, {"assignment_id": assignment_id}).first()
    if row is None or row[0].user_id != actor.user_id:
        raise NotFound(f"no assignment {assignment_id}")
    return row[0], row[1]


def skip_task(session: Session, *, actor: Actor, assignment_id: int, reason: str) -> None:
    """Give an item back to the queue, saying why; the expert will not get it again."""
    reason = reason.strip()
    if not reason:
        raise WorkspaceError("say why you skip this item", code="reason_required")
    assignment = accessible_assignment(session, actor=actor, assignment_id=assignment_id)
    if assignment.status != "leased":
        raise Conflict(f"this item is {assignment.status} already")
    _release(
        session, assignment.id, assignment.item_id, status="skipped", now=_now(), reason=reason
    )
    audit.record(
        session,
        actor_id=actor.user_id,
        action="item.skip",
        project_id=assignment.project_id,
        target=f"item {assignment.item_id}",
        details={"reason": reason},
    )


def queue_counts(session: Session, *, project_id: int) -> dict[str, int]:
    """Return task items done, needing judgments, and in lease, for progress pages."""
    project = session.get(ProjectRow, project_id)
    if project is None:
        raise NotFound(f"no project {project_id}")
    row = session.execute(
        select(
            func.count(ItemRow.id),
            func.count(ItemRow.id).filter(ItemRow.judged >= project.overlap),
            func.coalesce(func.sum(ItemRow.leased), 0),
            func.coalesce(func.sum(ItemRow.judged), 0),
        ).where(ItemRow.project_id == project_id, ItemRow.purpose == "task")
    ).one()
    total, done, leased, judged = (int(value) for value in row)
    return {
        "items": total,
        "done": done,
        "needing_judgments": total - done,
        "in_lease": leased,
        "judgments": judged,
        "judgments_to_finish": total * project.overlap - judged,
    }
