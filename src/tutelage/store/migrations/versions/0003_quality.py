"""quality: exclusions, adjudications, consensus labels; consensus settings of projects

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LABELS = "label IN ('a', 'b', 'tie', 'both_bad')"


def upgrade() -> None:
    op.create_table(
        "quality_exclusions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("excluded_by", sa.Integer(), nullable=True),
        sa.Column("excluded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.Integer(), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["excluded_by"], ["users.id"], name=op.f("fk_quality_exclusions_excluded_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["lifted_by"], ["users.id"], name=op.f("fk_quality_exclusions_lifted_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_quality_exclusions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_quality_exclusions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_exclusions")),
    )
    with op.batch_alter_table("quality_exclusions", schema=None) as batch_op:
        # At most one exclusion in force per expert and project.
        batch_op.create_index(
            "uq_quality_exclusions_in_force",
            ["project_id", "user_id"],
            unique=True,
            sqlite_where=sa.text("lifted_at IS NULL"),
            postgresql_where=sa.text("lifted_at IS NULL"),
        )

    op.create_table(
        "adjudications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_LABELS, name=op.f("ck_adjudications_label")),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_adjudications_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_adjudications_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["users.id"], name=op.f("fk_adjudications_reviewer_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adjudications")),
        sa.UniqueConstraint("item_id", name=op.f("uq_adjudications_item_id")),
    )
    with op.batch_alter_table("adjudications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_adjudications_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "consensus_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column(
            "judgment_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_LABELS, name=op.f("ck_consensus_labels_label")),
        sa.CheckConstraint(
            "method IN ('majority', 'dawid_skene', 'adjudication')",
            name=op.f("ck_consensus_labels_method"),
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_consensus_labels_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_consensus_labels_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consensus_labels")),
        sa.UniqueConstraint("item_id", name=op.f("uq_consensus_labels_item_id")),
    )
    with op.batch_alter_table("consensus_labels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consensus_labels_project_id"), ["project_id"], unique=False
        )

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "consensus_method",
                sa.String(length=16),
                nullable=False,
                server_default="dawid_skene",
            )
        )
        batch_op.add_column(
            sa.Column("adjudication_threshold", sa.Float(), nullable=False, server_default="0.7")
        )


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("adjudication_threshold")
        batch_op.drop_column("consensus_method")
    op.drop_table("consensus_labels")
    op.drop_table("adjudications")
    op.drop_table("quality_exclusions")
