"""Tables of the expert workspace: membership, NDA, items and their leases, access, audit.

An *item* is one unit of work shown to experts (a pair to compare, answers to rank, an
answer to rate, rewrite or flag, or a red-team slot). An *assignment* is one expert's
lease on one item, and what became of it. `items.judged` and `items.leased` count the
assignments that are submitted and currently leased, so claiming the last slot is one
conditional UPDATE that two experts cannot both win.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tutelage.store.tables import Base, ProjectRow, utcnow

__all__ = [
    "ApiTokenRow",
    "AssignmentRow",
    "AuditRow",
    "IdempotencyRow",
    "InvitationRow",
    "ItemRow",
    "LoginThrottleRow",
    "MembershipRow",
    "NdaAcceptanceRow",
    "RenderedAnswerRow",
    "WebSessionRow",
]


class MembershipRow(Base):
    """An expert's (or reviewer's) place in a project, and their qualification result."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    qualification_score: Mapped[float | None] = mapped_column(Float, default=None)
    qualified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class NdaAcceptanceRow(Base):
    """An expert accepted the NDA text whose SHA-256 is `text_hash`, at `accepted_at`."""

    __tablename__ = "nda_acceptances"
    __table_args__ = (UniqueConstraint("project_id", "user_id", "text_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    text_hash: Mapped[str] = mapped_column(String(64))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ItemRow(Base):
    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint("purpose IN ('task', 'gold', 'qualification')", name="purpose"),
        CheckConstraint("judged >= 0 AND leased >= 0", name="counts"),
        # The queue's order (closest to completion first) read straight off the index.
        Index(
            "ix_items_queue",
            "project_id",
            "purpose",
            "kind",
            text("(judged + leased) DESC"),
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16), default="task")
    prompt_id: Mapped[int | None] = mapped_column(
        ForeignKey("prompts.id", ondelete="CASCADE"), default=None
    )
    completion_ids: Mapped[list[Any]] = mapped_column(default=list)
    # For gold and qualification items: the known answer, e.g. {"winner": completion id}.
    gold_answer: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    expertise_tag: Mapped[str | None] = mapped_column(String(100), default=None)
    judged: Mapped[int] = mapped_column(Integer, default=0)
    leased: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AssignmentRow(Base):
    """One expert's lease on one item: what was shown, for how long, and the outcome."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "user_id"),
        CheckConstraint("status IN ('leased', 'submitted', 'skipped', 'expired')", name="status"),
        Index("ix_assignments_user_status", "user_id", "status"),
        # a project's open leases, read by every next-task call (queue.py)
        Index("ix_assignments_project_status", "project_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="leased")
    # Completion ids in the order shown (position 0 is "A"): randomised per assignment.
    shown_order: Mapped[list[Any]] = mapped_column(default=list)
    leased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    skip_reason: Mapped[str | None] = mapped_column(Text, default=None)
    active_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    judgment_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    judgment_id: Mapped[int | None] = mapped_column(Integer, default=None)
    correct: Mapped[bool | None] = mapped_column(Boolean, default=None)

    # Read-only links to what the assignment is about. The queue sets them on a new lease,
    # so the task view that follows need not load the item and project again.
    item: Mapped[ItemRow] = relationship(viewonly=True)
    project: Mapped[ProjectRow] = relationship(viewonly=True)


class IdempotencyRow(Base):
    """A client's idempotency key and the response its first request received."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    response: Mapped[dict[str, Any]] = mapped_column()
    # SHA-256 of what was sent (the assignment and the judgment, not its active seconds);
    # None for keys stored before revision 0007.
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiTokenRow(Base):
    """A personal API token; only its SHA-256 is kept (the token itself is random)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class WebSessionRow(Base):
    """A browser session: the cookie holds the token, the table its hash and CSRF secret."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Where it was signed in from, so its owner can tell their sessions apart (0009).
    address: Mapped[str] = mapped_column(String(64), default="", server_default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="", server_default="")


class LoginThrottleRow(Base):
    """Failed sign-ins of one client address or one account, and its lock (migration 0009);
    `scope` 'known' marks an address an account signed in from (see workspace.throttling)."""

    __tablename__ = "login_throttles"
    __table_args__ = (
        UniqueConstraint("scope", "key"),
        CheckConstraint("scope IN ('address', 'account', 'known')", name="scope"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(400))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    locks: Mapped[int] = mapped_column(Integer, default=0)  # in a row: each lasts twice as long
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InvitationRow(Base):
    """An invitation by link: whoever opens it may create an account with this role."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16), default="expert")
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), default=None
    )
    expertise: Mapped[list[Any]] = mapped_column(default=list)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class AuditRow(Base):
    """One change to projects, members, NDA or judgments. Rows are never updated or deleted
    (database triggers refuse it)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    action: Mapped[str] = mapped_column(String(100))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id"), default=None, index=True
    )
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RenderedAnswerRow(Base):
    """An answer's HTML as the workspace shows it, rendered once when its items are built
    rather than on every view (rendering was a tenth of a next-task call). `renderer`
    names the rendering code and libraries that made it: HTML from any other renderer
    (a changed sanitiser, a new library version) is not served but rendered again."""

    __tablename__ = "rendered_answers"

    completion_id: Mapped[int] = mapped_column(
        ForeignKey("completions.id", ondelete="CASCADE"), primary_key=True
    )
    renderer: Mapped[str] = mapped_column(String(16))
    html: Mapped[str] = mapped_column(Text)
