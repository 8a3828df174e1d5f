"""The store's tables (SQLAlchemy 2 declarative). Schema changes go through Alembic.

Judgments live in one table per kind rather than one table with a JSON payload:
quality statistics scan millions of comparisons and need typed, indexed columns.
Each judgment row carries its provenance: an expert (workspace) or a named source
with the import it came from, when, active seconds, and what was shown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

__all__ = [
    "Base",
    "ComparisonRow",
    "CompletionRow",
    "FlagRow",
    "ImportRow",
    "ProjectRow",
    "PromptRow",
    "RankingRow",
    "RatingRow",
    "RewriteRow",
    "UserRow",
]

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC time: SQLite gives back naive datetimes for timezone-aware
    columns, which were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JsonType, list[Any]: JsonType}


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    domain: Mapped[str] = mapped_column(String(200), default="general")
    instructions: Mapped[str] = mapped_column(Text, default="")
    rubric: Mapped[list[Any]] = mapped_column(default=list)
    pay_rate_per_hour: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    nda_text: Mapped[str] = mapped_column(Text, default="")
    licence: Mapped[str] = mapped_column(String(200), default="unspecified")
    consent: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # How the workspace serves the project's items (see records.Project).
    task_kinds: Mapped[list[Any]] = mapped_column(default=lambda: ["comparison"])
    overlap: Mapped[int] = mapped_column(Integer, default=3)
    required_expertise: Mapped[list[Any]] = mapped_column(default=list)
    rationale_required: Mapped[bool] = mapped_column(Boolean, default=False)
    qualification_pass_mark: Mapped[float | None] = mapped_column(Float, default=None)
    gold_rate: Mapped[float] = mapped_column(Float, default=0.0)
    lease_seconds: Mapped[int] = mapped_column(Integer, default=900)
    # How the quality stage labels the project's items (see records.Project).
    consensus_method: Mapped[str] = mapped_column(String(16), default="dawid_skene")
    adjudication_threshold: Mapped[float] = mapped_column(Float, default=0.7)


class UserRow(Base):
    """A person with an account: an expert who judges, a reviewer, or an admin.

    Judgments point here through `expert_id`; `handle` is what other people may see.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handle: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    expertise: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    email: Mapped[str | None] = mapped_column(String(320), unique=True, default=None)
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    role: Mapped[str] = mapped_column(String(16), default="expert")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (CheckConstraint("role IN ('admin', 'reviewer', 'expert')", name="role"),)


class ImportRow(Base):
    """One file imported into a project: where its records came from and what happened."""

    __tablename__ = "imports"
    __table_args__ = (UniqueConstraint("project_id", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))
    licence: Mapped[str] = mapped_column(String(200), default="unspecified")
    # What the people behind the file agreed to, as the importer stated it (migration 0004).
    consent: Mapped[str] = mapped_column(Text, default="")
    lines_read: Mapped[int] = mapped_column(Integer, default=0)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PromptRow(Base):
    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("project_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    messages: Mapped[list[Any]] = mapped_column()
    import_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id"), default=None)
    # Set when an expert wrote the prompt (red-teaming) rather than a file supplying it.
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CompletionRow(Base):
    __tablename__ = "completions"
    __table_args__ = (UniqueConstraint("prompt_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    model_id: Mapped[str] = mapped_column(String(300), default="unknown")
    model_version: Mapped[str] = mapped_column(String(200), default="")
    generation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def _one_author() -> CheckConstraint:
    return CheckConstraint("(expert_id IS NULL) <> (source IS NULL)", name="one_author")


class _JudgmentColumns:
    """Provenance shared by every judgment kind: exactly one of expert_id and source."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)

    @declared_attr
    def project_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)

    @declared_attr
    def prompt_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)

    @declared_attr
    def expert_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("users.id"), default=None, index=True)

    @declared_attr
    def import_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("imports.id"), default=None)

    source: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    active_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    shown: Mapped[dict[str, Any]] = mapped_column(default=dict)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (_one_author(),)


class ComparisonRow(_JudgmentColumns, Base):
    __tablename__ = "comparisons"

    completion_a_id: Mapped[int] = mapped_column(ForeignKey("completions.id", ondelete="CASCADE"))
    completion_b_id: Mapped[int] = mapped_column(ForeignKey("completions.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(8))
    strength: Mapped[str | None] = mapped_column(String(8), default=None)
    criteria: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rationale: Mapped[str] = mapped_column(Text, default="")

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (
            _one_author(),
            CheckConstraint("outcome IN ('a', 'b', 'tie', 'both_bad')", name="outcome"),
            CheckConstraint(
                "strength IS NULL OR strength IN ('slight', 'clear', 'decisive')",
                name="strength",
            ),
            CheckConstraint("completion_a_id <> completion_b_id", name="distinct_pair"),
        )


class RankingRow(_JudgmentColumns, Base):
    __tablename__ = "rankings"

    order: Mapped[list[Any]] = mapped_column("completion_order")  # completion ids, best first
    rationale: Mapped[str] = mapped_column(Text, default="")


class RatingRow(_JudgmentColumns, Base):
    __tablename__ = "ratings"

    completion_id: Mapped[int] = mapped_column(ForeignKey("completions.id", ondelete="CASCADE"))
    scores: Mapped[dict[str, Any]] = mapped_column()
    rationale: Mapped[str] = mapped_column(Text, default="")


class RewriteRow(_JudgmentColumns, Base):
    __tablename__ = "rewrites"

    completion_id: Mapped[int] = mapped_column(ForeignKey("completions.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)


class FlagRow(_JudgmentColumns, Base):
    __tablename__ = "flags"

    completion_id: Mapped[int] = mapped_column(ForeignKey("completions.id", ondelete="CASCADE"))
    span_start: Mapped[int] = mapped_column(Integer)  # character offsets into the text
    span_end: Mapped[int] = mapped_column(Integer)
    flag: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (
            _one_author(),
            CheckConstraint("span_end > span_start", name="span"),
        )


Index("ix_comparisons_pair", ComparisonRow.completion_a_id, ComparisonRow.completion_b_id)
