"""idempotency keys remember what was sent with them

A retry with the same Idempotency-Key gets the first answer only if it sends the same
judgment; a key sent with another one is refused (409). Keys stored before this revision
have no hash and are taken to match, as they were.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("request_hash")
