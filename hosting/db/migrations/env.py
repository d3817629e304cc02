"""Alembic environment: migrations always run on a connection handed in by `hosting.db.engine.migrate`."""

from alembic import context

from hosting.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through hosting.db.migrate(engine); the service does so at start-up")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
