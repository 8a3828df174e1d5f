"""imports are staged in batches and published at once

A large import wrote every record in one transaction, which on SQLite held the one
writer (and so every expert's submit) for its whole run. It now writes its records into
these staging tables in batches of short transactions and moves them into the project's
tables in one short transaction at the end; what a killed import left here is removed
by the next import or by `tutelage db doctor`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 18:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_WHEN = sa.DateTime(timezone=True)


def _staging_id(table: str) -> list[Any]:
    return [
        sa.Column("staging_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["staging_id"],
            ["import_stagings.id"],
            name=op.f(f"fk_{table}_staging_id_import_stagings"),
            ondelete="CASCADE",
        ),
    ]


def _index(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{table}_staging_id"), ["staging_id"], unique=False)


def upgrade() -> None:
    op.create_table(
        "import_stagings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_stagings")),
    )
    op.create_table(
        "staged_prompts",
        sa.Column("id", sa.Integer(), nullable=False),
        *_staging_id("staged_prompts"),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("messages", _JSON, nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staged_prompts")),
        sa.UniqueConstraint("staging_id", "key", name=op.f("uq_staged_prompts_staging_id")),
    )
    op.create_table(
        "staged_completions",
        sa.Column("id", sa.Integer(), nullable=False),
        *_staging_id("staged_completions"),
        sa.Column("prompt_key", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("model_id", sa.String(length=300), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("generation", _JSON, nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staged_completions")),
        sa.UniqueConstraint(
            "staging_id", "prompt_key", "key", name=op.f("uq_staged_completions_staging_id")
        ),
    )
    op.create_table(
        "staged_comparisons",
        sa.Column("id", sa.Integer(), nullable=False),
        *_staging_id("staged_comparisons"),
        sa.Column("prompt_key", sa.String(length=64), nullable=False),
        sa.Column("a_key", sa.String(length=64), nullable=False),
        sa.Column("b_key", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("strength", sa.String(length=8), nullable=True),
        sa.Column("criteria", _JSON, nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column("shown", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staged_comparisons")),
    )
    for table in ("staged_prompts", "staged_completions", "staged_comparisons"):
        _index(table)


def downgrade() -> None:
    for table in ("staged_comparisons", "staged_completions", "staged_prompts"):
        op.drop_table(table)
    op.drop_table("import_stagings")
