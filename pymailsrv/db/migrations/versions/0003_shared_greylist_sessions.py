"""pymailsrv's tables for more state several nodes share: greylisting (db/shared_greylist.py)
and logged-in sessions for per-user connection limits (db/shared_sessions.py). PostfixAdmin's
tables are not touched.

Revision ID: 0003
"""

from alembic import context, op
from sqlalchemy import MetaData

from pymailsrv.db.shared_greylist import greylist_client_table, greylist_table
from pymailsrv.db.shared_sessions import session_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ((greylist_table, "greylisting triplets shared by nodes"),
          (greylist_client_table, "greylisting auto-whitelist shared by nodes"),
          (session_table, "logged-in sessions shared by nodes"))


def upgrade() -> None:
    prefix = context.config.attributes.get("table_prefix", "")
    messages = context.config.attributes.setdefault("messages", [])
    for make, what in TABLES:
        table = make(MetaData(), prefix)
        table.create(op.get_bind(), checkfirst=True)
        messages.append(f"created {table.name} ({what})")


def downgrade() -> None:
    prefix = context.config.attributes.get("table_prefix", "")
    for make, _ in reversed(TABLES):
        make(MetaData(), prefix).drop(op.get_bind(), checkfirst=True)
