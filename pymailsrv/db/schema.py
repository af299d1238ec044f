"""Creating, recognising and upgrading the PostfixAdmin schema (alembic, run programmatically).

``upgrade(url)`` runs the migrations shipped inside the package (``db/migrations``, so a plain
``pip install`` has them; no alembic.ini is needed). Revision 0001 looks at the database first:

* empty: creates the PostfixAdmin 3.3 tables (``db.models``) and the ``config`` row
  ``version`` = 1847, as PostfixAdmin's own upgrader would leave them;
* an existing PostfixAdmin database (every table present, ``config.version`` >= 1847): changes
  nothing in it. Alembic records its revision in its own table, ``pymailsrv_alembic_version``,
  the one object pymailsrv adds; no PostfixAdmin table, row or column is touched;
* anything else (some tables missing, or version < 1847): refuses with one clear line
  (run PostfixAdmin's upgrade.php first), and changes nothing.

``create_schema`` and ``seed`` are for tests and ``pymailsrv init``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pymailsrv.db.engine import make_engine, translate_errors
from pymailsrv.db.models import SCHEMA_VERSION, TABLES, complete_row, metadata_for, tables_for
from pymailsrv.errors import ConfigError

VERSION_TABLE = "pymailsrv_alembic_version"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SEED_ORDER = ("domain", "alias_domain", "mailbox", "alias", "vacation", "vacation_notification")


@dataclass
class DbState:
    """What a database holds: ``empty``, ``postfixadmin`` or ``partial``."""

    kind: str
    version: int | None = None
    missing: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.kind == "empty":
            return "no PostfixAdmin tables"
        if self.kind == "partial":
            return f"PostfixAdmin tables missing: {', '.join(self.missing)}"
        return f"PostfixAdmin schema version {self.version}"


def inspect_state(conn: Connection) -> DbState:
    present = set(inspect(conn).get_table_names())
    ours = [t for t in TABLES if t in present]
    if not ours:
        return DbState("empty")
    missing = [t for t in TABLES if t not in present]
    version = None
    if "config" in present:
        cfg = tables_for(conn.dialect.name)["config"]
        value = conn.execute(select(cfg.c.value).where(cfg.c.name == "version")).scalar()
        try:
            version = int(str(value).strip()) if value is not None else None
        except ValueError:
            version = None
    if missing:
        return DbState("partial", version, missing)
    return DbState("postfixadmin", version)


def migrate_0001(conn: Connection) -> str:
    """Revision 0001 (see the module docstring); returns what it did."""
    state = inspect_state(conn)
    if state.kind == "empty":
        metadata_for(conn.dialect.name).create_all(conn)
        cfg = tables_for(conn.dialect.name)["config"]
        conn.execute(cfg.insert().values(name="version", value=str(SCHEMA_VERSION)))
        return f"created the PostfixAdmin schema (version {SCHEMA_VERSION})"
    if state.kind == "partial":
        raise ConfigError(f"database has an incomplete PostfixAdmin schema ({state.describe()}); "
                          "run PostfixAdmin's upgrade.php or point database_url at an empty database")
    if state.version is None or state.version < SCHEMA_VERSION:
        raise ConfigError(f"PostfixAdmin schema version {state.version} is older than {SCHEMA_VERSION}; "
                          "run PostfixAdmin's upgrade.php first")
    return f"recognised an existing PostfixAdmin database (version {state.version}); changed nothing"


def _alembic_config(conn: Connection, messages: list[str]) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    cfg.attributes["messages"] = messages
    return cfg


def _upgrade_sync(conn: Connection) -> list[str]:
    from alembic import command

    messages: list[str] = []
    command.upgrade(_alembic_config(conn, messages), "head")
    return messages


def _current_sync(conn: Connection) -> tuple[str | None, DbState]:
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision(), inspect_state(conn)


def _head() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


async def _with_engine(target: AsyncEngine | str) -> tuple[AsyncEngine, bool]:
    if isinstance(target, AsyncEngine):
        return target, False
    return make_engine(target), True


async def upgrade(target: AsyncEngine | str) -> list[str]:
    """Bring the database to the head revision; returns one line per step taken."""
    engine, owned = await _with_engine(target)
    try:
        async with translate_errors(), engine.begin() as conn:
            messages = await conn.run_sync(_upgrade_sync)
    finally:
        if owned:
            await engine.dispose()
    return messages or [f"already at revision {_head()}; nothing to do"]


async def current(target: AsyncEngine | str) -> tuple[str | None, DbState]:
    """(pymailsrv's alembic revision or None, what the database holds)."""
    engine, owned = await _with_engine(target)
    try:
        async with translate_errors(), engine.connect() as conn:
            return await conn.run_sync(_current_sync)
    finally:
        if owned:
            await engine.dispose()


async def create_schema(target: AsyncEngine | str) -> None:
    """Create (or recognise) the schema: ``upgrade`` without the report."""
    await upgrade(target)


async def seed(target: AsyncEngine | str, rows: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
    """Insert rows given as ``{table: [row, ...]}`` (PostfixAdmin column names; NOT NULL columns
    without a default are filled as PostfixAdmin would, e.g. mailbox.maildir = domain/local/)."""
    engine, owned = await _with_engine(target)
    try:
        tables = tables_for(engine.dialect.name)
        order = [t for t in SEED_ORDER if t in rows] + [t for t in rows if t not in SEED_ORDER]
        async with translate_errors(), engine.begin() as conn:
            for name in order:
                for row in rows[name]:
                    await conn.execute(tables[name].insert().values(**complete_row(name, dict(row))))
    finally:
        if owned:
            await engine.dispose()
