"""Throughput: how many judgments a project received in each of the last hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from tutelage.store.workspace_tables import AssignmentRow

__all__ = ["HourCount", "hourly_judgments"]


@dataclass(frozen=True)
class HourCount:
    start: datetime  # UTC, on the hour
    judgments: int


def hourly_judgments(
    session: Session, *, project_id: int, hours: int = 24, now: datetime | None = None
) -> list[HourCount]:
    """Return the judgments submitted in each of the last `hours` clock hours (UTC), oldest
    first; the last is the current hour, so far.

    One query: each submitted assignment gets the index of its hour from a CASE over the
    hours' starts (the same SQL on SQLite and PostgreSQL, unlike date_trunc or strftime),
    and the outer query counts per index.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    current = now.replace(minute=0, second=0, microsecond=0)
    starts = [current - timedelta(hours=hours - 1 - index) for index in range(hours)]
    finished = AssignmentRow.finished_at
    newest_first = [
        (finished >= start, index) for index, start in reversed(list(enumerate(starts)))
    ]
    submitted = (
        select(case(*newest_first).label("hour"))
        .where(
            AssignmentRow.project_id == project_id,
            AssignmentRow.status == "submitted",
            finished >= starts[0],
            finished < current + timedelta(hours=1),
        )
        # A subquery, so the outer GROUP BY names a column: PostgreSQL would not see two
        # copies of a CASE with bound parameters as the same expression.
        .subquery()
    )
    query = select(submitted.c.hour, func.count()).group_by(submitted.c.hour)
    counts = {int(hour): int(judgments) for hour, judgments in session.execute(query)}
    return [
        HourCount(start=start, judgments=counts.get(index, 0)) for index, start in enumerate(starts)
    ]
