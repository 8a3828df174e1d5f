"""evaluations of trained models

`evaluations` keeps every `tutelage eval` run: the model evaluated (folder, weights
fingerprint, run config hash), the data sets with their hashes, settings, results and
the report page, for the registry's promotion gate and the admin pages to read.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("model_hash", sa.String(length=64), nullable=False),
        sa.Column("run_config_hash", sa.String(length=64), nullable=True),
        sa.Column("data", _JSON, nullable=False),
        sa.Column("settings", _JSON, nullable=False),
        sa.Column("results", _JSON, nullable=False),
        sa.Column("report_html", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('reward', 'policy', 'judge')", name=op.f("ck_evaluations_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evaluations_model_hash"), ["model_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluations_model_hash"))
    op.drop_table("evaluations")
