"""Time, pay and progress: what each expert sees of their own work, and admins of everyone's.

Hours are active hours as measured in the page (paused when the tab is hidden or the
expert idle), so pay follows attention, not open tabs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutelage.store.tables import ProjectRow, UserRow
from tutelage.store.workspace_tables import AssignmentRow, ItemRow
from tutelage.workspace.errors import NotFound
from tutelage.workspace.queue import queue_counts

__all__ = ["ExpertStats", "ProjectStats", "expert_stats", "project_stats"]


@dataclass(frozen=True)
class ExpertStats:
    user_id: int
    handle: str
    items: int
    hours: float
    earnings: Decimal
    currency: str
    gold_answered: int
    gold_correct: int
    skipped: int

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answered if self.gold_answered else None


@dataclass(frozen=True)
class ProjectStats:
    experts: list[ExpertStats]
    progress: dict[str, int]
    cost_so_far: Decimal
    cost_per_judgment: Decimal | None
    projected_cost_to_finish: Decimal | None
    judgments_last_hour: int
    currency: str


def _money(hours: float, rate: Decimal) -> Decimal:
    return (Decimal(str(hours)) * rate).quantize(Decimal("0.01"))


def _per_expert(session: Session, project: ProjectRow, user_id: int | None) -> list[ExpertStats]:
    submitted = AssignmentRow.status == "submitted"
    is_gold = ItemRow.purpose == "gold"
    query = (
        select(
            UserRow.id,
            UserRow.handle,
            func.count(AssignmentRow.id).filter(submitted),
            func.coalesce(func.sum(AssignmentRow.active_seconds).filter(submitted), 0.0),
            func.count(AssignmentRow.id).filter(submitted, is_gold),
            func.count(AssignmentRow.id).filter(
                submitted, is_gold, AssignmentRow.correct.is_(True)
            ),
            func.count(AssignmentRow.id).filter(AssignmentRow.status == "skipped"),
        )
        .join(AssignmentRow, AssignmentRow.user_id == UserRow.id)
        .join(ItemRow, ItemRow.id == AssignmentRow.item_id)
        .where(AssignmentRow.project_id == project.id)
        .group_by(UserRow.id, UserRow.handle)
        .order_by(UserRow.handle)
    )
    if user_id is not None:
        query = query.where(UserRow.id == user_id)
    rate = Decimal(project.pay_rate_per_hour)
    return [
        ExpertStats(
            user_id=uid,
            handle=handle,
            items=int(items),
            hours=float(seconds) / 3600,
            earnings=_money(float(seconds) / 3600, rate),
            currency=project.currency,
            gold_answered=int(gold),
            gold_correct=int(gold_ok),
            skipped=int(skipped),
        )
        for uid, handle, items, seconds, gold, gold_ok, skipped in session.execute(query).all()
    ]


def expert_stats(session: Session, *, project_id: int, user_id: int, handle: str) -> ExpertStats:
    project = session.get(ProjectRow, project_id)
    if project is None:
        raise NotFound(f"no project {project_id}")
    found = _per_expert(session, project, user_id)
    if found:
        return found[0]
    return ExpertStats(user_id, handle, 0, 0.0, Decimal("0.00"), project.currency, 0, 0, 0)


def project_stats(session: Session, *, project_id: int) -> ProjectStats:
    project = session.get(ProjectRow, project_id)
    if project is None:
        raise NotFound(f"no project {project_id}")
    experts = _per_expert(session, project, None)
    progress = queue_counts(session, project_id=project_id)
    cost = sum((e.earnings for e in experts), Decimal("0.00"))
    judged = sum(e.items for e in experts)
    per_judgment = (cost / judged).quantize(Decimal("0.01")) if judged else None
    projected = (
        (per_judgment * progress["judgments_to_finish"]).quantize(Decimal("0.01"))
        if per_judgment is not None
        else None
    )
    last_hour = session.scalar(
        select(func.count(AssignmentRow.id)).where(
            AssignmentRow.project_id == project_id,
            AssignmentRow.status == "submitted",
            AssignmentRow.finished_at >= datetime.now(UTC) - timedelta(hours=1),
        )
    )
    return ProjectStats(
        experts=experts,
        progress=progress,
        cost_so_far=cost,
        cost_per_judgment=per_judgment,
        projected_cost_to_finish=projected,
        judgments_last_hour=int(last_hour or 0),
        currency=project.currency,
    )
