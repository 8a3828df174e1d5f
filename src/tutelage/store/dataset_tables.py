"""Tables of the governance stage: dataset versions, their history, and eval sets.

A *dataset version* is an immutable snapshot of records written as Parquet files with a
manifest; the row points at the folder and keeps the manifest for listing. Its
*events* (checks, overrides, redactions, notes) are its history: append-only, like the
audit log (database triggers refuse UPDATE and DELETE). An *eval set* is a registered
benchmark file whose items are checked against versions for contamination.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tutelage.store.tables import Base, utcnow

__all__ = ["DatasetEventRow", "DatasetVersionRow", "EvalItemRow", "EvalSetRow"]


class DatasetVersionRow(Base):
    """One immutable dataset version: its files live under `path`, named by `hash`."""

    __tablename__ = "dataset_versions"
    __table_args__ = (CheckConstraint("kind IN ('preference', 'sft', 'ratings')", name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    hash: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), default=None)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"), default=None)
    path: Mapped[str] = mapped_column(Text)
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


class DatasetEventRow(Base):
    """One entry of a version's history. Never updated or deleted (triggers refuse it)."""

    __tablename__ = "dataset_events"
    __table_args__ = (
        CheckConstraint("kind IN ('check', 'override', 'redaction', 'note')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    passed: Mapped[bool | None] = mapped_column(Boolean, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvalSetRow(Base):
    """A registered evaluation set: the file it was read from and how many items it held."""

    __tablename__ = "eval_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    filename: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvalItemRow(Base):
    """One item of an eval set, at its 0-based `position` in the registered file."""

    __tablename__ = "eval_items"
    __table_args__ = (UniqueConstraint("eval_set_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    eval_set_id: Mapped[int] = mapped_column(ForeignKey("eval_sets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    prompt_text: Mapped[str] = mapped_column(Text)
    answer_text: Mapped[str] = mapped_column(Text, default="")
