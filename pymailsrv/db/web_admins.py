"""PostfixAdmin's web administrators (``admin`` + ``domain_admins``), for the statistics page.

PostfixAdmin 3.3 marks a superadmin twice: ``admin.superadmin`` and a ``domain_admins`` row for
the domain ``ALL`` (POSTFIXADMIN-SCHEMA §2). On PostgreSQL that row breaks the foreign key to
``domain`` and is missing, so either mark makes a superadmin here; the admin must be active, and
so must an ALL row that marks it. The page is for them only. Passwords are stored as
PostfixAdmin's pacrypt writes them, so ``auth/`` checks them as it checks mailbox passwords.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, true
from sqlalchemy.exc import DBAPIError, OperationalError

from pymailsrv.db.engine import make_engine
from pymailsrv.db.models import tables_for
from pymailsrv.errors import TemporaryFailure

ALL_DOMAINS = "ALL"


class WebAdmins:
    def __init__(self, database_url: str, table_prefix: str = "") -> None:
        self.engine = make_engine(database_url)
        self.t = tables_for(self.engine.dialect.name, table_prefix)

    def _yes(self) -> Any:
        return true() if self.engine.dialect.name == "postgresql" else 1

    async def superadmin_password(self, username: str) -> str | None:
        """The stored password of an active superadmin ``username``; None for anyone else.
        TemporaryFailure when the database cannot answer."""
        a, da = self.t["admin"], self.t["domain_admins"]
        all_row = (select(da.c.username).where(da.c.username == a.c.username, da.c.domain == ALL_DOMAINS,
                                              da.c.active == self._yes()).exists())
        stmt = (select(a.c.password)
                .where(a.c.username == username.strip().lower(), a.c.active == self._yes(),
                       or_(a.c.superadmin == self._yes(), all_row)).limit(1))
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(stmt)).first()
        except (OperationalError, DBAPIError, OSError) as exc:
            raise TemporaryFailure(f"admin lookup: {exc}") from exc
        return None if row is None else str(row[0] or "")

    async def add_superadmin(self, username: str, password_hash: str) -> None:
        """An active superadmin as PostfixAdmin's ``setup.php`` creates one (admin row with
        superadmin set, domain_admins row for ALL but on PostgreSQL)."""
        name = username.strip().lower()
        async with self.engine.begin() as conn:
            await conn.execute(self.t["admin"].insert().values(
                username=name, password=password_hash, superadmin=True, active=True,
                created=func.now(), modified=func.now()))
            if self.engine.dialect.name != "postgresql":  # the foreign key to domain refuses ALL there
                await conn.execute(self.t["domain_admins"].insert().values(
                    username=name, domain=ALL_DOMAINS, active=True, created=func.now()))

    async def close(self) -> None:
        await self.engine.dispose()
