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


def inspect_state(conn: Connection, prefix: str = "") -> DbState:
    present = {name[len(prefix):] for name in inspect(conn).get_table_names() if name.startswith(prefix)}
    ours = [t for t in TABLES if t in present]
    if not ours:
        return DbState("empty")
    missing = [prefix + t for t in TABLES if t not in present]
    version = None
    if "config" in present:
        cfg = tables_for(conn.dialect.name, prefix)["config"]
        value = conn.execute(select(cfg.c.value).where(cfg.c.name == "version")).scalar()
        try:
            version = int(str(value).strip()) if value is not None else None
        except ValueError:
            version = None
    if missing:
        return DbState("partial", version, missing)
    return DbState("postfixadmin", version)


def refuse(state: DbState) -> None:
    """Raise ConfigError for a database pymailsrv must not touch (see the module docstring)."""
    if state.kind == "partial":
        raise ConfigError(f"database has an incomplete PostfixAdmin schema ({state.describe()}); "
                          "run PostfixAdmin's upgrade.php or point database_url at an empty database")
    if state.kind == "postfixadmin" and (state.version is None or state.version < SCHEMA_VERSION):
        raise ConfigError(f"PostfixAdmin schema version {state.version} is older than {SCHEMA_VERSION}; "
                          "run PostfixAdmin's upgrade.php first")


def migrate_0001(conn: Connection, prefix: str = "") -> str:
    """Revision 0001 (see the module docstring); returns what it did."""
    state = inspect_state(conn, prefix)
    refuse(state)
    if state.kind == "empty":
        metadata_for(conn.dialect.name, prefix).create_all(conn)
        cfg = tables_for(conn.dialect.name, prefix)["config"]
        conn.execute(cfg.insert().values(name="version", value=str(SCHEMA_VERSION)))
        return f"created the PostfixAdmin schema (version {SCHEMA_VERSION})"
    return f"recognised an existing PostfixAdmin database (version {state.version}); changed nothing"


def _alembic_config(conn: Connection, messages: list[str], prefix: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    cfg.attributes["messages"] = messages
    cfg.attributes["table_prefix"] = prefix
    return cfg


def _upgrade_sync(conn: Connection, prefix: str) -> list[str]:
    from alembic import command

    refuse(inspect_state(conn, prefix))  # before alembic creates its version table (MySQL DDL commits)
    messages: list[str] = []
    command.upgrade(_alembic_config(conn, messages, prefix), "head")
    return messages


def _current_sync(conn: Connection, prefix: str) -> tuple[str | None, DbState]:
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={"version_table": prefix + VERSION_TABLE})
    return ctx.get_current_revision(), inspect_state(conn, prefix)


def _head() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


def head_revision() -> str:
    """The newest revision this pymailsrv ships (``pymailsrv db upgrade`` brings a database there)."""
    return _head()


async def _with_engine(target: AsyncEngine | str) -> tuple[AsyncEngine, bool]:
    if isinstance(target, AsyncEngine):
        return target, False
    return make_engine(target), True


async def upgrade(target: AsyncEngine | str, prefix: str = "") -> list[str]:
    """Bring the database to the head revision; returns one line per step taken.
    ``prefix``: PostfixAdmin's ``database_prefix`` (also prefixes pymailsrv's version table)."""
    engine, owned = await _with_engine(target)
    try:
        async with translate_errors(), engine.begin() as conn:
            messages = await conn.run_sync(_upgrade_sync, prefix)
    finally:
        if owned:
            await engine.dispose()
    return messages or [f"already at revision {_head()}; nothing to do"]


async def current(target: AsyncEngine | str, prefix: str = "") -> tuple[str | None, DbState]:
    """(pymailsrv's alembic revision or None, what the database holds)."""
    engine, owned = await _with_engine(target)
    try:
        async with translate_errors(), engine.connect() as conn:
            return await conn.run_sync(_current_sync, prefix)
    finally:
        if owned:
            await engine.dispose()


async def create_schema(target: AsyncEngine | str, prefix: str = "") -> None:
    """Create (or recognise) the schema: ``upgrade`` without the report."""
    await upgrade(target, prefix)


async def seed(target: AsyncEngine | str, rows: Mapping[str, Iterable[Mapping[str, Any]]], *,
               enforce_foreign_keys: bool = True, prefix: str = "") -> None:
    """Insert rows given as ``{table: [row, ...]}`` (PostfixAdmin column names; NOT NULL columns
    without a default are filled as PostfixAdmin would, e.g. mailbox.maildir = domain/local/).

    ``enforce_foreign_keys=False`` lets PostgreSQL take rows that break its foreign keys (data
    written by other tools; needs a superuser); MySQL and SQLite have no such keys to break."""
    engine, owned = await _with_engine(target)
    try:
        tables = tables_for(engine.dialect.name, prefix)
        order = [t for t in SEED_ORDER if t in rows] + [t for t in rows if t not in SEED_ORDER]
        async with translate_errors(), engine.begin() as conn:
            if not enforce_foreign_keys and engine.dialect.name == "postgresql":
                await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for name in order:
                for row in rows[name]:
                    await conn.execute(tables[name].insert().values(**complete_row(name, dict(row))))
    finally:
        if owned:
            await engine.dispose()
