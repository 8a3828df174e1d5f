"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 07:21:59.675724
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("handle", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column(
            "expertise",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("handle", name=op.f("uq_users_handle")),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("domain", sa.String(length=200), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column(
            "rubric",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("pay_rate_per_hour", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("nda_text", sa.Text(), nullable=False),
        sa.Column("licence", sa.String(length=200), nullable=False),
        sa.Column("consent", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("licence", sa.String(length=200), nullable=False),
        sa.Column("lines_read", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column(
            "skipped",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_imports_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
        sa.UniqueConstraint("project_id", "sha256", name=op.f("uq_imports_project_id")),
    )
    op.create_table(
        "prompts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column(
            "messages",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_prompts_import_id_imports")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_prompts_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
        sa.UniqueConstraint("project_id", "key", name=op.f("uq_prompts_project_id")),
    )
    op.create_table(
        "completions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("model_id", sa.String(length=300), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column(
            "generation",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_completions_import_id_imports")
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_completions_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_completions")),
        sa.UniqueConstraint("prompt_id", "key", name=op.f("uq_completions_prompt_id")),
    )
    op.create_table(
        "rankings",
        sa.Column(
            "completion_order",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column(
            "shown",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(expert_id IS NULL) <> (source IS NULL)", name=op.f("ck_rankings_one_author")
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["users.id"], name=op.f("fk_rankings_expert_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_rankings_import_id_imports")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_rankings_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_rankings_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rankings")),
    )
    with op.batch_alter_table("rankings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rankings_expert_id"), ["expert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rankings_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rankings_prompt_id"), ["prompt_id"], unique=False)

    op.create_table(
        "comparisons",
        sa.Column("completion_a_id", sa.Integer(), nullable=False),
        sa.Column("completion_b_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("strength", sa.String(length=8), nullable=True),
        sa.Column(
            "criteria",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column(
            "shown",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('a', 'b', 'tie', 'both_bad')", name=op.f("ck_comparisons_outcome")
        ),
        sa.CheckConstraint(
            "strength IS NULL OR strength IN ('slight', 'clear', 'decisive')",
            name=op.f("ck_comparisons_strength"),
        ),
        sa.CheckConstraint(
            "(expert_id IS NULL) <> (source IS NULL)", name=op.f("ck_comparisons_one_author")
        ),
        sa.CheckConstraint(
            "completion_a_id <> completion_b_id", name=op.f("ck_comparisons_distinct_pair")
        ),
        sa.ForeignKeyConstraint(
            ["completion_a_id"],
            ["completions.id"],
            name=op.f("fk_comparisons_completion_a_id_completions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["completion_b_id"],
            ["completions.id"],
            name=op.f("fk_comparisons_completion_b_id_completions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["users.id"], name=op.f("fk_comparisons_expert_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_comparisons_import_id_imports")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_comparisons_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_comparisons_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comparisons")),
    )
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_comparisons_expert_id"), ["expert_id"], unique=False)
        batch_op.create_index(
            "ix_comparisons_pair", ["completion_a_id", "completion_b_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_comparisons_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_comparisons_prompt_id"), ["prompt_id"], unique=False)

    op.create_table(
        "flags",
        sa.Column("completion_id", sa.Integer(), nullable=False),
        sa.Column("span_start", sa.Integer(), nullable=False),
        sa.Column("span_end", sa.Integer(), nullable=False),
        sa.Column("flag", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column(
            "shown",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(expert_id IS NULL) <> (source IS NULL)", name=op.f("ck_flags_one_author")
        ),
        sa.CheckConstraint("span_end > span_start", name=op.f("ck_flags_span")),
        sa.ForeignKeyConstraint(
            ["completion_id"],
            ["completions.id"],
            name=op.f("fk_flags_completion_id_completions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["expert_id"], ["users.id"], name=op.f("fk_flags_expert_id_users")),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_flags_import_id_imports")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_flags_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_flags_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags")),
    )
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flags_expert_id"), ["expert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_flags_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_flags_prompt_id"), ["prompt_id"], unique=False)

    op.create_table(
        "ratings",
        sa.Column("completion_id", sa.Integer(), nullable=False),
        sa.Column(
            "scores",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column(
            "shown",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(expert_id IS NULL) <> (source IS NULL)", name=op.f("ck_ratings_one_author")
        ),
        sa.ForeignKeyConstraint(
            ["completion_id"],
            ["completions.id"],
            name=op.f("fk_ratings_completion_id_completions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["users.id"], name=op.f("fk_ratings_expert_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_ratings_import_id_imports")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_ratings_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_ratings_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
    )
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ratings_expert_id"), ["expert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ratings_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ratings_prompt_id"), ["prompt_id"], unique=False)

    op.create_table(
        "rewrites",
        sa.Column("completion_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column(
            "shown",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(expert_id IS NULL) <> (source IS NULL)", name=op.f("ck_rewrites_one_author")
        ),
        sa.ForeignKeyConstraint(
            ["completion_id"],
            ["completions.id"],
            name=op.f("fk_rewrites_completion_id_completions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["users.id"], name=op.f("fk_rewrites_expert_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_rewrites_import_id_imports")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_rewrites_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_rewrites_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rewrites")),
    )
    with op.batch_alter_table("rewrites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rewrites_expert_id"), ["expert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rewrites_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rewrites_prompt_id"), ["prompt_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rewrites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rewrites_prompt_id"))
        batch_op.drop_index(batch_op.f("ix_rewrites_project_id"))
        batch_op.drop_index(batch_op.f("ix_rewrites_expert_id"))

    op.drop_table("rewrites")
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ratings_prompt_id"))
        batch_op.drop_index(batch_op.f("ix_ratings_project_id"))
        batch_op.drop_index(batch_op.f("ix_ratings_expert_id"))

    op.drop_table("ratings")
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flags_prompt_id"))
        batch_op.drop_index(batch_op.f("ix_flags_project_id"))
        batch_op.drop_index(batch_op.f("ix_flags_expert_id"))

    op.drop_table("flags")
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_comparisons_prompt_id"))
        batch_op.drop_index(batch_op.f("ix_comparisons_project_id"))
        batch_op.drop_index("ix_comparisons_pair")
        batch_op.drop_index(batch_op.f("ix_comparisons_expert_id"))

    op.drop_table("comparisons")
    with op.batch_alter_table("rankings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rankings_prompt_id"))
        batch_op.drop_index(batch_op.f("ix_rankings_project_id"))
        batch_op.drop_index(batch_op.f("ix_rankings_expert_id"))

    op.drop_table("rankings")
    op.drop_table("completions")
    op.drop_table("prompts")
    op.drop_table("imports")
    op.drop_table("projects")
    op.drop_table("users")
