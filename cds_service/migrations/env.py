"""Alembic environment: migrate the connection store.alembic_config() passes (there is no alembic.ini and no
URL here, so a password never sits in a file). To write a new revision, see the README ("Card and feedback
store"): autogenerate compares with cds_service.store.Base.metadata."""

from __future__ import annotations

from alembic import context

from cds_service.store import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through cds_service.store (Store.upgrade or alembic_config(connection))")

# SQLite cannot ALTER most things in place: batch mode copies the table, keeping its rows.
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
