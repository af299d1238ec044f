"""pymailsrv's own table for state several nodes share: failed logins (db/shared_state.py).
PostfixAdmin's tables are not touched.

Revision ID: 0002
"""

from alembic import context, op
from sqlalchemy import MetaData

from pymailsrv.db.shared_state import auth_failure_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    prefix = context.config.attributes.get("table_prefix", "")
    auth_failure_table(MetaData(), prefix).create(op.get_bind(), checkfirst=True)
    context.config.attributes.setdefault("messages", []).append(
        f"created {prefix}pymailsrv_auth_failure (failed logins shared by nodes)")


def downgrade() -> None:
    prefix = context.config.attributes.get("table_prefix", "")
    auth_failure_table(MetaData(), prefix).drop(op.get_bind(), checkfirst=True)
