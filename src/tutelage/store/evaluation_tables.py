"""Evaluations of trained models, kept so that later stages can read them (migration 0010).

One row per `tutelage eval ...` run: what was evaluated (the folder, a fingerprint of its
weights and the run's config hash), on what (each data set with its hash), with which
settings, what came out, and the report page as it was written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tutelage.store.tables import Base, utcnow

__all__ = ["EVALUATION_KINDS", "EvaluationRow"]

EVALUATION_KINDS = ("reward", "policy", "judge")


class EvaluationRow(Base):
    __tablename__ = "evaluations"
    __table_args__ = (CheckConstraint("kind IN ('reward', 'policy', 'judge')", name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(Text)
    # sha256 over the weight files' own sha256: the same weights anywhere give the same
    model_hash: Mapped[str] = mapped_column(String(64), index=True)
    run_config_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # [{"source": ..., "hash": ..., "n": ...}, ...]
    data: Mapped[list[Any]] = mapped_column()
    settings: Mapped[dict[str, Any]] = mapped_column()
    results: Mapped[dict[str, Any]] = mapped_column()
    report_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
