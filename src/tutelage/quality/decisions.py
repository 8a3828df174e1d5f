"""Decisions people make about quality: excluding an expert's work, adjudicating an item.

Each is a row of its own (so it can be read back and, for exclusions, undone) and an
entry in the append-only audit log, written in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from tutelage.records import ComparisonOutcome
from tutelage.store.quality_tables import AdjudicationRow, ConsensusLabelRow, ExclusionRow
from tutelage.store.tables import ComparisonRow, ProjectRow, UserRow
from tutelage.store.workspace_tables import AssignmentRow, ItemRow, MembershipRow
from tutelage.workspace import audit
from tutelage.workspace.accounts import Actor
from tutelage.workspace.errors import Conflict, NotFound, WorkspaceError
from tutelage.workspace.policy import require_admin, require_reviewer

__all__ = [
    "Exclusion",
    "adjudicate",
    "exclude_expert",
    "exclusions",
    "include_expert",
    "item_judgment_ids",
    "user_by_email",
]


@dataclass(frozen=True)
class Exclusion:
    """An exclusion as an admin sees it: whose, why, when, by whom, and whether still in
    force (`excluded_by` and `lifted_by` are None when the command line decided)."""

    id: int
    user_id: int
    handle: str
    reason: str
    excluded_at: datetime
    excluded_by: str | None
    lifted_at: datetime | None
    lifted_by: str | None
    lift_reason: str | None

    @property
    def in_force(self) -> bool:
        return self.lifted_at is None


def user_by_email(session: Session, *, email: str) -> UserRow:
    """Return the account with this e-mail address, or raise NotFound."""
    user = session.scalar(select(UserRow).where(UserRow.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no account with the e-mail address {email!r}")
    return user


def _project(session: Session, project_id: int) -> ProjectRow:
    project = session.get(ProjectRow, project_id)
    if project is None:
        raise NotFound(f"no project {project_id}")
    return project


def _in_force(session: Session, project_id: int, user_id: int) -> ExclusionRow | None:
    return session.scalar(
        select(ExclusionRow).where(
            ExclusionRow.project_id == project_id,
            ExclusionRow.user_id == user_id,
            ExclusionRow.lifted_at.is_(None),
        )
    )


def exclude_expert(
    session: Session, *, actor: Actor | None, project_id: int, user_id: int, reason: str
) -> ExclusionRow:
    """Leave the expert's judgments in the project out of consensus and datasets.

    `actor` is the admin deciding; None when the command line does it (whoever runs it
    holds the store itself). The reason is required and goes to the audit log.
    """
    if actor is not None:
        require_admin(actor)
    project = _project(session, project_id)
    user = session.get(UserRow, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    if not reason.strip():
        raise WorkspaceError("say why the expert's judgments are excluded (a reason is required)")
    member = session.scalar(
        select(MembershipRow.id).where(
            MembershipRow.project_id == project_id, MembershipRow.user_id == user_id
        )
    )
    if member is None:
        raise NotFound(f"{user.handle!r} is not a member of project {project.name!r}")
    if _in_force(session, project_id, user_id) is not None:
        raise Conflict(f"{user.handle!r} is excluded from project {project.name!r} already")
    row = ExclusionRow(
        project_id=project_id,
        user_id=user_id,
        reason=reason.strip(),
        excluded_by=actor.user_id if actor else None,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor_id=actor.user_id if actor else None,
        action="quality.exclude",
        project_id=project_id,
        target=user.handle,
        details={"user_id": user_id, "reason": row.reason, "exclusion": row.id},
    )
    return row


def include_expert(
    session: Session, *, actor: Actor | None, project_id: int, user_id: int, reason: str = ""
) -> ExclusionRow:
    """Undo the expert's exclusion in force: their judgments count again."""
    if actor is not None:
        require_admin(actor)
    project = _project(session, project_id)
    user = session.get(UserRow, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    row = _in_force(session, project_id, user_id)
    if row is None:
        raise Conflict(f"{user.handle!r} is not excluded from project {project.name!r}")
    row.lifted_at = datetime.now(UTC)
    row.lifted_by = actor.user_id if actor else None
    row.lift_reason = reason.strip()
    audit.record(
        session,
        actor_id=actor.user_id if actor else None,
        action="quality.include",
        project_id=project_id,
        target=user.handle,
        details={"user_id": user_id, "reason": row.lift_reason, "exclusion": row.id},
    )
    return row


def exclusions(session: Session, *, project_id: int) -> list[Exclusion]:
    """Every exclusion of the project, newest first, lifted ones included."""
    rows = session.scalars(
        select(ExclusionRow)
        .where(ExclusionRow.project_id == project_id)
        .order_by(ExclusionRow.id.desc())
    ).all()
    people = {row.user_id for row in rows} | {
        user for row in rows for user in (row.excluded_by, row.lifted_by) if user is not None
    }
    handles = dict(
        session.execute(select(UserRow.id, UserRow.handle).where(UserRow.id.in_(people))).all()
    )
    return [
        Exclusion(
            id=row.id,
            user_id=row.user_id,
            handle=handles[row.user_id],
            reason=row.reason,
            excluded_at=row.excluded_at,
            excluded_by=handles.get(row.excluded_by) if row.excluded_by else None,
            lifted_at=row.lifted_at,
            lifted_by=handles.get(row.lifted_by) if row.lifted_by else None,
            lift_reason=row.lift_reason,
        )
        for row in rows
    ]


def item_judgment_ids(session: Session, *, item: ItemRow) -> list[int]:
    """The ids of the comparisons that count for a comparison item.

    Those the workspace stored for the item (found through its assignments) and those
    imported for the same pair of answers.
    """
    submitted = session.scalars(
        select(AssignmentRow.judgment_id).where(
            AssignmentRow.item_id == item.id,
            AssignmentRow.status == "submitted",
            AssignmentRow.judgment_kind == "comparison",
            AssignmentRow.judgment_id.is_not(None),
        )
    )
    first, second = item.completion_ids[:2]
    imported = session.scalars(
        select(ComparisonRow.id).where(
            ComparisonRow.source.is_not(None),
            or_(
                and_(
                    ComparisonRow.completion_a_id == first, ComparisonRow.completion_b_id == second
                ),
                and_(
                    ComparisonRow.completion_a_id == second, ComparisonRow.completion_b_id == first
                ),
            ),
        )
    )
    return sorted({int(i) for i in submitted if i is not None} | set(imported))


def adjudicate(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    item_id: int,
    label: str,
    note: str = "",
) -> AdjudicationRow:
    """Record a reviewer's final label for a comparison item; a second one is refused.

    `label` is in the item's canonical order (its first answer is "a"). The item's
    stored consensus label becomes the adjudication at once.
    """
    require_reviewer(actor)
    project = _project(session, project_id)
    item = session.get(ItemRow, item_id)
    if item is None or item.project_id != project_id:
        raise NotFound(f"no item {item_id} in project {project.name!r}")
    if item.kind != "comparison":
        raise WorkspaceError(
            f"item {item_id} is a {item.kind} item; only comparisons are adjudicated"
        )
    outcomes = [outcome.value for outcome in ComparisonOutcome]
    if label not in outcomes:
        raise WorkspaceError(f"label must be one of {', '.join(outcomes)}, got {label!r}")
    earlier = session.scalar(select(AdjudicationRow).where(AdjudicationRow.item_id == item_id))
    if earlier is not None:
        reviewer = session.get(UserRow, earlier.reviewer_id)
        raise Conflict(
            f"item {item_id} was adjudicated already ({earlier.label!r} by "
            f"{reviewer.handle if reviewer else 'a reviewer'} on "
            f"{earlier.created_at:%Y-%m-%d %H:%M}); an adjudication is final"
        )
    row = AdjudicationRow(
        project_id=project_id,
        item_id=item_id,
        label=label,
        reviewer_id=actor.user_id,
        note=note.strip(),
    )
    session.add(row)
    session.flush()
    judgment_ids = item_judgment_ids(session, item=item)
    stored = session.scalar(select(ConsensusLabelRow).where(ConsensusLabelRow.item_id == item_id))
    if stored is None:
        stored = ConsensusLabelRow(project_id=project_id, item_id=item_id)
        session.add(stored)
    stored.label = label
    stored.confidence = 1.0
    stored.method = "adjudication"
    stored.judgment_ids = judgment_ids
    stored.computed_at = row.created_at
    audit.record(
        session,
        actor_id=actor.user_id,
        action="quality.adjudicate",
        project_id=project_id,
        target=f"item {item_id}",
        details={"label": label, "note": row.note, "adjudication": row.id},
    )
    return row
