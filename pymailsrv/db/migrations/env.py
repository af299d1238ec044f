"""Alembic environment for pymailsrv: always run on a connection handed over in
``config.attributes["connection"]`` by ``pymailsrv.db.schema`` (no alembic.ini, no URL here)."""

from alembic import context

from pymailsrv.db.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
