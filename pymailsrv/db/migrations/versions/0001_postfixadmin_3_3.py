"""PostfixAdmin 3.3 schema (config version 1847): create it on an empty database, recognise an
existing PostfixAdmin database and leave it untouched (see pymailsrv.db.schema).

Revision ID: 0001
"""

from alembic import context, op

from pymailsrv.db.schema import migrate_0001

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    message = migrate_0001(op.get_bind(), context.config.attributes.get("table_prefix", ""))
    context.config.attributes.setdefault("messages", []).append(message)


def downgrade() -> None:
    raise NotImplementedError("pymailsrv never drops the PostfixAdmin tables")
