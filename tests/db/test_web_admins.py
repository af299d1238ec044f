"""PostfixAdmin's web admins for the statistics page, on every SQL backend: only an active
superadmin (``admin.superadmin``, or an active ``domain_admins`` row for ALL, as PostfixAdmin 3.3
marks them) gets a password back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import func

from pymailsrv.db.schema import create_schema
from pymailsrv.db.web_admins import WebAdmins


@pytest.mark.parametrize("backend", ["sqlite", "mariadb", "postgres"])
def test_only_active_superadmins(scratch_db: Callable[[str], str], backend: str) -> None:
    asyncio.run(_check(scratch_db(backend), backend))


async def _check(url: str, backend: str) -> None:
    await create_schema(url)
    admins = WebAdmins(url)
    try:
        await admins.add_superadmin("Boss@Example.test", "{PLAIN}x")
        a, da = admins.t["admin"], admins.t["domain_admins"]
        async with admins.engine.begin() as conn:
            await conn.execute(a.insert().values(username="off@example.test", password="{PLAIN}o", superadmin=True,
                                                 created=func.now(), modified=func.now(), active=False))
            await conn.execute(a.insert().values(username="domain@example.test", password="{PLAIN}z",
                                                 created=func.now(), modified=func.now(), active=True))
            if backend != "postgres":  # a domain row would need the domain there (PostgreSQL's foreign key)
                await conn.execute(da.insert().values(username="domain@example.test", domain="example.test",
                                                      created=func.now(), active=True))
            if backend != "postgres":  # only an ALL row marks these two (older PostfixAdmin)
                for name, active in (("legacy@example.test", True), ("retired@example.test", False)):
                    await conn.execute(a.insert().values(username=name, password="{PLAIN}y", created=func.now(),
                                                         modified=func.now(), active=True))
                    await conn.execute(da.insert().values(username=name, domain="ALL", created=func.now(),
                                                          active=active))
        assert await admins.superadmin_password(" boss@example.test ") == "{PLAIN}x"
        assert await admins.superadmin_password("off@example.test") is None
        assert await admins.superadmin_password("retired@example.test") is None
        if backend != "postgres":
            assert await admins.superadmin_password("legacy@example.test") == "{PLAIN}y"
        assert await admins.superadmin_password("domain@example.test") is None
        assert await admins.superadmin_password("nobody@example.test") is None
    finally:
        await admins.close()
