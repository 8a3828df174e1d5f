"""consensus labels of pairs no item shows: imported comparisons count without an item

A project of imported preference pairs has comparisons but no workspace items. Each
such pair is a unit of consensus of its own, named by its two completions (lower id
first); a label's unit is either an item or a pair, never both.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:00:00.000000
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNIT = (
    "(item_id IS NOT NULL AND completion_a_id IS NULL AND completion_b_id IS NULL) OR "
    "(item_id IS NULL AND completion_a_id IS NOT NULL AND completion_b_id IS NOT NULL)"
)


@contextmanager
def _quiet_reflection() -> Iterator[None]:
    # On SQLite the table is rebuilt from a reflection, which follows its foreign key to
    # `items` and warns that the queue's expression index cannot be reflected; that index
    # is not on this table and is untouched.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        yield


def upgrade() -> None:
    with _quiet_reflection(), op.batch_alter_table("consensus_labels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("completion_a_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("completion_b_id", sa.Integer(), nullable=True))
        batch_op.alter_column("item_id", existing_type=sa.Integer(), nullable=True)
        for column in ("completion_a_id", "completion_b_id"):
            batch_op.create_foreign_key(
                batch_op.f(f"fk_consensus_labels_{column}_completions"),
                "completions",
                [column],
                ["id"],
                ondelete="CASCADE",
            )
        batch_op.create_check_constraint(batch_op.f("ck_consensus_labels_unit"), _UNIT)
        batch_op.create_unique_constraint(
            "uq_consensus_labels_pair", ["project_id", "completion_a_id", "completion_b_id"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM consensus_labels WHERE item_id IS NULL")
    with _quiet_reflection(), op.batch_alter_table("consensus_labels", schema=None) as batch_op:
        batch_op.drop_constraint("uq_consensus_labels_pair", type_="unique")
        batch_op.drop_constraint(batch_op.f("ck_consensus_labels_unit"), type_="check")
        for column in ("completion_a_id", "completion_b_id"):
            batch_op.drop_constraint(
                batch_op.f(f"fk_consensus_labels_{column}_completions"), type_="foreignkey"
            )
        batch_op.alter_column("item_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("completion_b_id")
        batch_op.drop_column("completion_a_id")
