"""Alembic environment for pymailsrv: always run on a connection handed over in
``config.attributes["connection"]`` by ``pymailsrv.db.schema`` (no alembic.ini, no URL here)."""

from alembic import context

from pymailsrv.db.schema import VERSION_TABLE

attributes = context.config.attributes
context.configure(connection=attributes["connection"], target_metadata=None,
                  version_table=attributes.get("table_prefix", "") + VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
