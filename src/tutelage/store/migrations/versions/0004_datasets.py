"""datasets: versions, their append-only history, eval sets; consent of imports

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09 09:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("manifest", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "kind IN ('preference', 'sft', 'ratings')", name=op.f("ck_dataset_versions_kind")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_versions_parent_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_dataset_versions_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_versions")),
        sa.UniqueConstraint("name", name=op.f("uq_dataset_versions_name")),
    )
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dataset_versions_hash"), ["hash"], unique=False)

    op.create_table(
        "dataset_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("details", _json(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('check', 'override', 'redaction', 'note')",
            name=op.f("ck_dataset_events_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_events_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_events")),
    )
    with op.batch_alter_table("dataset_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_events_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "eval_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_eval_sets_name")),
    )
    op.create_table(
        "eval_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("eval_set_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt_text", sa.Text(), nullable=False),
        sa.Column("answer_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["eval_set_id"],
            ["eval_sets.id"],
            name=op.f("fk_eval_items_eval_set_id_eval_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_items")),
        sa.UniqueConstraint("eval_set_id", "position", name=op.f("uq_eval_items_eval_set_id")),
    )

    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent", sa.Text(), nullable=False, server_default=""))

    _dataset_events_are_append_only()


def _dataset_events_are_append_only() -> None:
    """A version's history is evidence (checks, overrides): refuse UPDATE and DELETE."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION dataset_events_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'dataset_events is append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER dataset_events_append_only BEFORE UPDATE OR DELETE ON dataset_events "
            "FOR EACH ROW EXECUTE FUNCTION dataset_events_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER dataset_events_no_{event.lower()} BEFORE {event} "
                "ON dataset_events BEGIN SELECT RAISE(ABORT, 'dataset_events is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS dataset_events_append_only ON dataset_events")
        op.execute("DROP FUNCTION IF EXISTS dataset_events_append_only()")
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_column("consent")
    op.drop_table("eval_items")
    op.drop_table("eval_sets")
    op.drop_table("dataset_events")
    op.drop_table("dataset_versions")
