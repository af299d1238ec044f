"""PostfixAdmin's vacation tables, read and written as its vacation.pl does.

Implementation notes:

* Read uncached on every delivery to a vacation pseudo-target: an edit in PostfixAdmin's UI
  (activate, change the text, deactivate) counts for the next message, with no restart and no
  wait for the directory cache.
* Time comes from the database (``NOW()``, SQLite's ``CURRENT_TIMESTAMP``), as vacation.pl's
  queries have it: ``activefrom``/``activeuntil`` and ``notified_at`` are written by PostfixAdmin
  in the database's notion of the time, so they are compared with that.
* ``due`` is vacation.pl's ``already_notified``, inverted: notifications older than the
  vacation's ``activefrom`` are forgotten (a new absence answers again); a sender not yet answered
  is recorded and answered; one already answered is answered again only when the interval (the
  row's ``interval_time``, or ``default_interval`` on a schema without that column) is more than
  0 and has passed since, and its ``notified_at`` moves to now. The conditional UPDATE makes two
  deliveries at the same moment send one reply.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, false, func, literal_column, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from pymailsrv.db.base import Vacation, normalize
from pymailsrv.db.engine import make_engine, translate_errors
from pymailsrv.db.models import tables_for


class SqlVacations:
    """Implements ``db.base.Vacations`` on the PostfixAdmin database."""

    def __init__(self, engine: AsyncEngine, *, table_prefix: str = "", default_interval: int = 0,
                 owns_engine: bool = False) -> None:
        self.engine = engine
        self.t: dict[str, Table] = tables_for(engine.dialect.name, table_prefix)
        self.default_interval = default_interval
        self.owns_engine = owns_engine
        self._has_interval: bool | None = None  # interval_time: PostfixAdmin 3.x; read once

    @classmethod
    def from_settings(cls, settings: Any) -> SqlVacations:
        """Built from ``database_url``, ``database_table_prefix`` and ``postfixadmin_vacation_interval``."""
        return cls(make_engine(settings.expanded("database_url")),
                   table_prefix=settings.expanded("database_table_prefix"),
                   default_interval=int(settings.get_seconds("postfixadmin_vacation_interval")), owns_engine=True)

    async def _interval_column(self) -> bool:
        if self._has_interval is None:
            probe = select(self.t["vacation"].c.interval_time).where(false())
            try:
                async with self.engine.connect() as conn:
                    await conn.execute(probe)
                self._has_interval = True
            except sa_exc.DBAPIError as exc:
                if "interval_time" not in str(exc.orig):  # not the missing column: an outage
                    async with translate_errors():
                        raise
                self._has_interval = False  # a schema older than PostfixAdmin 3.0
        return self._has_interval

    def _true(self) -> Any:
        # '1' matches on all three (POSTFIXADMIN-SCHEMA §1); PostgreSQL needs it as a boolean literal
        return literal_column("true" if self.engine.dialect.name == "postgresql" else "'1'")

    async def away(self, email: str) -> Vacation | None:
        """The vacation of ``email`` if it is active now, else None."""
        v = self.t["vacation"]
        cols = [v.c.email, v.c.subject, v.c.body]
        with_interval = await self._interval_column()
        if with_interval:
            cols.append(v.c.interval_time)
        now = func.now()
        stmt = select(*cols).where(v.c.email == normalize(email), v.c.active == self._true(),
                                   v.c.activefrom <= now, v.c.activeuntil >= now)
        async with translate_errors(), self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        interval = int(row[3] or 0) if with_interval else self.default_interval
        return Vacation(email=str(row[0]), subject=str(row[1] or ""), body=str(row[2] or ""),
                        interval=max(0, interval))

    def _cutoff(self, seconds: int) -> Any:
        """The database's now minus ``seconds``."""
        n = int(seconds)
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            return func.datetime("now", f"-{n} seconds")
        if dialect == "postgresql":
            return text(f"now() - interval '{n} seconds'")
        return text(f"NOW() - INTERVAL {n} SECOND")

    async def due(self, vacation: Vacation, sender: str) -> bool:
        """Whether ``sender`` gets a reply now; records that it does (see the module notes)."""
        v, vn = self.t["vacation"], self.t["vacation_notification"]
        owner, notified = normalize(vacation.email), sender.strip().lower()
        mine = (vn.c.on_vacation == owner) & (vn.c.notified == notified)
        began = select(v.c.activefrom).where(v.c.email == owner).scalar_subquery()
        async with translate_errors(), self.engine.begin() as conn:
            await conn.execute(delete(vn).where(mine, vn.c.notified_at < began))
        try:
            async with translate_errors(), self.engine.begin() as conn:
                await conn.execute(vn.insert().values(on_vacation=owner, notified=notified,
                                                      notified_at=func.now()))
            return True
        except sa_exc.IntegrityError:
            pass  # answered before (the primary key); vacation.pl relies on the same error
        if vacation.interval <= 0:
            return False
        async with translate_errors(), self.engine.begin() as conn:
            result = await conn.execute(update(vn).where(mine, vn.c.notified_at < self._cutoff(vacation.interval))
                                        .values(notified_at=func.now()))
        return bool(result.rowcount)

    async def close(self) -> None:
        if self.owns_engine:
            await self.engine.dispose()
