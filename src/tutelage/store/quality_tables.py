"""Tables of the quality stage: exclusions, adjudications and the consensus labels.

An *exclusion* leaves one expert's judgments in a project out of consensus and
datasets; undoing it sets `lifted_at` rather than deleting the row, and both steps
are also in the audit log. An *adjudication* is a reviewer's final label for an item
(one per item: the database refuses a second). A *consensus label* is the label the
project's method gave an item when it was last computed, with the judgments it came
from; datasets are snapshotted from these rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tutelage.store.tables import Base, utcnow

__all__ = ["AdjudicationRow", "ConsensusLabelRow", "ExclusionRow"]

_LABELS = "label IN ('a', 'b', 'tie', 'both_bad')"
_UNIT = (
    "(item_id IS NOT NULL AND completion_a_id IS NULL AND completion_b_id IS NULL) OR "
    "(item_id IS NULL AND completion_a_id IS NOT NULL AND completion_b_id IS NOT NULL)"
)


class ExclusionRow(Base):
    """An expert's judgments in a project are left out, for `reason`, until lifted."""

    __tablename__ = "quality_exclusions"
    __table_args__ = (
        # At most one exclusion in force per expert and project.
        Index(
            "uq_quality_exclusions_in_force",
            "project_id",
            "user_id",
            unique=True,
            sqlite_where=text("lifted_at IS NULL"),
            postgresql_where=text("lifted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    excluded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    excluded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    lifted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    lift_reason: Mapped[str | None] = mapped_column(Text, default=None)


class AdjudicationRow(Base):
    """A reviewer's final label for a comparison item; it overrides every consensus method."""

    __tablename__ = "adjudications"
    __table_args__ = (CheckConstraint(_LABELS, name="label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    label: Mapped[str] = mapped_column(String(8))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsensusLabelRow(Base):
    """The consensus label of one item (or one pair no item shows) as last computed, and
    the judgments behind it.

    `label` is in the unit's canonical order: the item's first completion is "a"; for a
    pair, `completion_a_id` is.
    """

    __tablename__ = "consensus_labels"
    __table_args__ = (
        CheckConstraint(_LABELS, name="label"),
        CheckConstraint("method IN ('majority', 'dawid_skene', 'adjudication')", name="method"),
        CheckConstraint(_UNIT, name="unit"),
        UniqueConstraint(
            "project_id", "completion_a_id", "completion_b_id", name="uq_consensus_labels_pair"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), unique=True, default=None
    )
    completion_a_id: Mapped[int | None] = mapped_column(
        ForeignKey("completions.id", ondelete="CASCADE"), default=None
    )
    completion_b_id: Mapped[int | None] = mapped_column(
        ForeignKey("completions.id", ondelete="CASCADE"), default=None
    )
    label: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(16))
    judgment_ids: Mapped[list[Any]] = mapped_column(default=list)  # comparisons.id
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
