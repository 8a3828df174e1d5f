"""Where an import puts its records before they join the project (migration 0008).

A large import is written here in batches of short transactions, so that the experts'
submits are never held up for long on SQLite's one writer; readers do not look here,
so the records become visible all at once when the import publishes them in one short
transaction (`tutelage.store.staging`). Prompts and completions are named by their
content keys, not ids: their ids exist only once they are published.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutelage.store.tables import Base, utcnow

__all__ = ["ImportStagingRow", "StagedComparisonRow", "StagedCompletionRow", "StagedPromptRow"]


class ImportStagingRow(Base):
    """An import under way: who runs it, so that one a kill left behind can be found."""

    __tablename__ = "import_stagings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Moved on with each batch: an import that stopped moving for long is dead.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def _staging_id() -> Mapped[int]:
    return mapped_column(ForeignKey("import_stagings.id", ondelete="CASCADE"), index=True)


class StagedPromptRow(Base):
    __tablename__ = "staged_prompts"
    __table_args__ = (UniqueConstraint("staging_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staging_id: Mapped[int] = _staging_id()
    key: Mapped[str] = mapped_column(String(64))
    messages: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StagedCompletionRow(Base):
    __tablename__ = "staged_completions"
    __table_args__ = (UniqueConstraint("staging_id", "prompt_key", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staging_id: Mapped[int] = _staging_id()
    prompt_key: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    model_id: Mapped[str] = mapped_column(String(300))
    model_version: Mapped[str] = mapped_column(String(200))
    generation: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StagedComparisonRow(Base):
    """A comparison from a named source, between two staged or stored completions."""

    __tablename__ = "staged_comparisons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the file's order
    staging_id: Mapped[int] = _staging_id()
    prompt_key: Mapped[str] = mapped_column(String(64))
    a_key: Mapped[str] = mapped_column(String(64))
    b_key: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(8))
    strength: Mapped[str | None] = mapped_column(String(8))
    criteria: Mapped[dict[str, Any]] = mapped_column()
    rationale: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    active_seconds: Mapped[float] = mapped_column(Float)
    shown: Mapped[dict[str, Any]] = mapped_column()
