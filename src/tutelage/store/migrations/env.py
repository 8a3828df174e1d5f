"""Alembic environment: the engine comes from tutelage.store.migrate, never from a file."""

from alembic import context

from tutelage.store import (  # noqa: F401  (registers their tables)
    dataset_tables,
    quality_tables,
    workspace_tables,
)
from tutelage.store.tables import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
