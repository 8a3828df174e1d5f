"""the next-task call's reads: open leases by index, answers rendered ahead

Every next-task call looks up the project's leases (expired ones go back to the queue,
the expert's own comes back). By project alone, that read every assignment the project
ever had, so the call slowed as judgments accumulated; (project_id, status) reads only
the open ones. The (status, expires_at) index served the lookup this one replaces.
Answers are rendered to HTML once, when their items are built (`rendered_answers`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 21:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_assignments_project_status", "assignments", ["project_id", "status"], unique=False
    )
    op.drop_index("ix_assignments_status_expires", table_name="assignments")
    op.create_table(
        "rendered_answers",
        sa.Column("completion_id", sa.Integer(), nullable=False),
        sa.Column("renderer", sa.String(length=16), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["completion_id"],
            ["completions.id"],
            name=op.f("fk_rendered_answers_completion_id_completions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("completion_id", name=op.f("pk_rendered_answers")),
    )


def downgrade() -> None:
    op.drop_table("rendered_answers")
    op.create_index(
        "ix_assignments_status_expires", "assignments", ["status", "expires_at"], unique=False
    )
    op.drop_index("ix_assignments_project_status", table_name="assignments")
