"""The PostfixAdmin 3.3 schema (config ``version`` = 1847) as SQLAlchemy Core tables.

PostfixAdmin writes its DDL once with placeholders (``{BOOLEAN}``, ``{DATETIME}``, ``{LATIN1}`` …)
and translates them per database (upgrade.php's ``db_query_parsed``). ``Kit`` does the same
translation here, so each table below is written once and comes out, per dialect, as PostfixAdmin's
upgrader leaves it (POSTFIXADMIN-SCHEMA §1, §2, §5):

* MySQL/MariaDB: key columns ``latin1`` / ``latin1_general_ci`` (case- and trailing-space-
  insensitive), human text ``utf8mb4``, ``tinyint(1)`` booleans, ``datetime`` defaulting to
  2000-01-01, InnoDB; the only foreign key is vacation_notification -> vacation.
* SQLite: PostfixAdmin's declarations (``varchar(255)``, ``tinyint(1)``, ``bigint(20)``,
  ``datetime`` …), no secondary indexes, ``domain_admins`` without ``id``.
* PostgreSQL: ``boolean``, ``timestamp with time zone``, SERIAL ids, the foreign keys to
  ``domain``, the composite ``(key, active)`` indexes, the fetchmail CHECKs and the
  ``merge_quota``/``merge_quota2`` triggers Dovecot's quota dict relies on.

Queries use ``metadata_for(dialect)``; column names are the same on every dialect.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    literal_column,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import TypeEngine, UserDefinedType

SCHEMA_VERSION = 1847
TABLES = (
    "admin", "alias", "alias_domain", "config", "domain", "domain_admins", "fetchmail", "log",
    "mailbox", "quota", "quota2", "vacation", "vacation_notification",
)
# ``active = '1'`` is true in MySQL, SQLite and PostgreSQL alike (POSTFIXADMIN-SCHEMA §1).
TRUE: ColumnClause[Any] = literal_column("'1'")
FETCHMAIL_AUTH = ("password", "kerberos_v5", "kerberos", "kerberos_v4", "gssapi", "cram-md5", "otp",
                  "ntlm", "msn", "ssh", "any")
FETCHMAIL_PROTOCOLS = ("POP3", "IMAP", "POP2", "ETRN", "AUTO")


def dialect_family(name: str) -> str:
    """``mysql`` (also MariaDB), ``sqlite`` or ``postgresql``."""
    if name in ("mysql", "mariadb"):
        return "mysql"
    if name in ("sqlite", "postgresql"):
        return name
    raise ValueError(f"unsupported database dialect {name!r} (mysql, mariadb, sqlite, postgresql)")


class Declared(UserDefinedType[Any]):
    """A SQLite column declared with PostfixAdmin's exact type text (``tinyint(1)``, ``datetime``)."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **kw: Any) -> str:
        return self.spec

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any]:
        def process(value: Any) -> Any:
            if isinstance(value, datetime):  # PostfixAdmin's SQLite text form
                return value.strftime("%Y-%m-%d %H:%M:%S")
            if isinstance(value, bool):
                return int(value)
            return value

        return process


class Kit:
    """upgrade.php's placeholder table for one dialect, as Column factories."""

    def __init__(self, family: str, prefix: str = "") -> None:
        self.family = family
        self.prefix = prefix
        self.mysql = family == "mysql"
        self.sqlite = family == "sqlite"
        self.pg = family == "postgresql"

    def name(self, table: str) -> str:
        """A table name with PostfixAdmin's ``$CONF['database_prefix']``."""
        return f"{self.prefix}{table}"

    def _col(self, name: str, type_: TypeEngine[Any], *, null: bool = False, default: str | None = None,
             pk: bool = False, **kw: Any) -> Column[Any]:
        sd = text(default) if default is not None else None
        return Column(name, type_, nullable=null, server_default=sd, primary_key=pk, **kw)

    def varchar(self, name: str, n: int = 255, cs: str = "latin1", **kw: Any) -> Column[Any]:
        """``varchar(n)``; on MySQL ``cs`` = latin1 (keys, {LATIN1}) or utf8mb4 (human text)."""
        if self.mysql:
            coll = "latin1_general_ci" if cs == "latin1" else None
            return self._col(name, mysql.VARCHAR(n, charset=cs, collation=coll), **kw)
        if self.sqlite:
            return self._col(name, Declared(f"varchar({n})"), **kw)
        return self._col(name, String(n), **kw)

    def text(self, name: str, cs: str = "latin1", **kw: Any) -> Column[Any]:
        if self.mysql:
            coll = "latin1_general_ci" if cs == "latin1" else None
            return self._col(name, mysql.TEXT(charset=cs, collation=coll), **kw)
        if self.sqlite:
            return self._col(name, Declared("text"), **kw)
        return self._col(name, Text(), **kw)

    def boolean(self, name: str, default: bool, *, unsigned: bool = False) -> Column[Any]:
        """{BOOLEAN}: tinyint(1) NOT NULL DEFAULT '0'/'1'; PostgreSQL boolean."""
        if self.pg:
            return self._col(name, Boolean(create_constraint=False), default="true" if default else "false")
        type_ = mysql.TINYINT(1, unsigned=unsigned) if self.mysql else Declared("tinyint(1)")
        return self._col(name, type_, default="'1'" if default else "'0'")

    def integer(self, name: str, width: int = 11, *, decl: str = "int(11)", unsigned: bool = False,
                **kw: Any) -> Column[Any]:
        if self.mysql:
            return self._col(name, mysql.INTEGER(display_width=width, unsigned=unsigned), **kw)
        if self.sqlite:
            return self._col(name, Declared(decl), **kw)
        return self._col(name, Integer(), **kw)

    def bigint(self, name: str, *, decl: str = "bigint(20)") -> Column[Any]:
        """{BIGINT}: bigint NOT NULL DEFAULT 0."""
        if self.mysql:
            return self._col(name, mysql.BIGINT(20), default="'0'")
        if self.sqlite:
            return self._col(name, Declared(decl), default="0")
        return self._col(name, BigInteger(), default="0")

    def _stamp(self, name: str, kind: str, day: str) -> Column[Any]:
        if self.pg:
            return self._col(name, TIMESTAMP(timezone=True), null=True, default=day)
        if self.sqlite:
            return self._col(name, Declared("datetime"), default=f"'{day[1:11]}'")
        type_ = mysql.DATETIME() if kind == "datetime" else mysql.TIMESTAMP()
        return self._col(name, type_, default=f"'{day[1:11]} 00:00:00'")

    def datetime(self, name: str, *, pg_now: bool = False) -> Column[Any]:
        """{DATETIME}: MySQL datetime, SQLite datetime, PostgreSQL timestamptz (2000-01-01)."""
        if self.pg and pg_now:
            return self.datecurrent(name, null=True)
        return self._stamp(name, "datetime", "'2000-01-01'")

    def date(self, name: str, day: str = "'2000-01-01'", *, pg_now: bool = False) -> Column[Any]:
        """{DATE} / {DATEFUTURE}: MySQL timestamp with a fixed default."""
        if self.pg and pg_now:
            return self.datecurrent(name, null=True)
        return self._stamp(name, "timestamp", day)

    def datecurrent(self, name: str, *, null: bool = False) -> Column[Any]:
        """{DATECURRENT}: a timestamp defaulting to the current time."""
        if self.pg:
            return self._col(name, TIMESTAMP(timezone=True), null=null, default="now()")
        if self.sqlite:
            return self._col(name, Declared("datetime"), default="CURRENT_TIMESTAMP")
        return self._col(name, mysql.TIMESTAMP(), default="CURRENT_TIMESTAMP")

    def serial(self, name: str = "id", *, unsigned: bool = False) -> Column[Any]:
        """{AUTOINCREMENT}: int(11) auto_increment / integer PRIMARY KEY AUTOINCREMENT / SERIAL."""
        if self.mysql:
            return Column(name, mysql.INTEGER(display_width=11, unsigned=unsigned), primary_key=True,
                          autoincrement=True, nullable=False)
        return Column(name, Integer(), primary_key=True, autoincrement=True, nullable=False)

    def table_args(self, collate: str | None = "latin1", comment: str | None = None) -> dict[str, Any]:
        if not self.mysql:
            return {"sqlite_autoincrement": True} if self.sqlite else {}
        args: dict[str, Any] = {"mysql_engine": "InnoDB"}
        if collate == "latin1":
            args.update(mysql_charset="latin1", mysql_collate="latin1_general_ci")
        elif collate:
            args["mysql_charset"] = collate
        if comment:
            args["comment"] = comment
        return args


def _pg_index(k: Kit, name: str, *cols: str) -> list[Index]:
    return [Index(k.name(name), *cols)] if k.pg else []  # PostgreSQL index names are schema-wide


def _pg_fk(k: Kit, col: str, cascade: bool = False) -> list[ForeignKeyConstraint]:
    if not k.pg:
        return []
    target = f"{k.name('domain')}.domain"
    return [ForeignKeyConstraint([col], [target], ondelete="CASCADE" if cascade else None)]


def _admin(k: Kit, m: MetaData) -> Table:
    return Table(
        k.name("admin"), m,
        k.varchar("username", pk=True),
        k.varchar("password", default="''" if k.pg else None),
        k.boolean("superadmin", False),
        k.datetime("created", pg_now=True),
        k.datetime("modified", pg_now=True),
        k.boolean("active", True),
        *_contact(k),
        **k.table_args(comment="Postfix Admin - Virtual Admins"),
    )


def _contact(k: Kit) -> list[Column[Any]]:
    """upgrade 1837/1841: alternative contact for password recovery (admin and mailbox)."""
    return [
        k.varchar("phone", 30, cs="utf8mb4", default="''"),
        k.varchar("email_other", cs="utf8mb4", default="''"),
        k.varchar("token", cs="utf8mb4", default="''"),
        k.datetime("token_validity"),
    ]


def _alias(k: Kit, m: MetaData) -> Table:
    return Table(
        k.name("alias"), m,
        k.varchar("address", pk=True),
        k.text("goto"),
        k.varchar("domain"),
        k.datetime("created", pg_now=True),
        k.datetime("modified", pg_now=True),
        k.boolean("active", True),
        *([Index("domain", "domain")] if k.mysql else []),
        *_pg_index(k, "alias_address_active", "address", "active"),
        *_pg_index(k, "alias_domain_idx", "domain"),
        *_pg_fk(k, "domain"),
        **k.table_args(comment="Postfix Admin - Virtual Aliases"),
    )


def _alias_domain(k: Kit, m: MetaData) -> Table:
    return Table(
        k.name("alias_domain"), m,
        k.varchar("alias_domain", pk=True, default="''" if k.mysql else None),
        k.varchar("target_domain", default="''" if k.mysql else None),
        k.datetime("created", pg_now=True),
        k.datetime("modified", pg_now=True),
        k.boolean("active", True),
        *([Index("active", "active"), Index("target_domain", "target_domain")] if k.mysql else []),
        *_pg_index(k, "alias_domain_active", "alias_domain", "active"),
        *_pg_fk(k, "alias_domain", cascade=True),
        *_pg_fk(k, "target_domain", cascade=True),
        **k.table_args(comment="Postfix Admin - Domain Aliases"),
    )


def _config(k: Kit, m: MetaData) -> Table:
    if k.sqlite:
        cols = [Column("name", Declared("TEXT"), nullable=False, server_default=text("''")),
                Column("value", Declared("TEXT"), nullable=False, server_default=text("''"))]
    else:
        cols = [k.varchar("name", 20, default=None if k.pg else "''"),
                k.varchar("value", 20, default=None if k.pg else "''")]
    unique = UniqueConstraint("name", name=None if k.pg else "name")
    return Table(k.name("config"), m, k.serial(), *cols, unique,
                 **k.table_args(collate=None, comment="PostfixAdmin settings"))


def _domain(k: Kit, m: MetaData) -> Table:
    return Table(
        k.name("domain"), m,
        k.varchar("domain", pk=True),
        k.varchar("description", cs="utf8mb4", default="''" if k.pg else None),
        k.integer("aliases", 10, default="0" if not k.mysql else "'0'"),
        k.integer("mailboxes", 10, default="0" if not k.mysql else "'0'"),
        k.bigint("maxquota"),
        k.bigint("quota"),
        k.varchar("transport", null=k.pg, default="NULL" if k.pg else None),
        k.boolean("backupmx", False),
        k.datetime("created", pg_now=True),
        k.datetime("modified", pg_now=True),
        k.boolean("active", True),
        k.integer("password_expiry", decl="int", null=True, default="0" if not k.mysql else "'0'"),
        *_pg_index(k, "domain_domain_active", "domain", "active"),
        **k.table_args(comment="Postfix Admin - Virtual Domains"),
    )


def _domain_admins(k: Kit, m: MetaData) -> Table:
    cols: list[Any] = [
        k.varchar("username"),
        k.varchar("domain"),
        k.datetime("created", pg_now=True),
        k.boolean("active", True),
    ]
    if not k.sqlite:  # upgrade 1844 (not on SQLite)
        cols.append(k.serial())
    if k.mysql:
        cols.append(Index("username", "username"))
    return Table(k.name("domain_admins"), m, *cols, *_pg_fk(k, "domain"),
                 **k.table_args(comment="Postfix Admin - Domain Admins"))


def _fetchmail(k: Kit, m: MetaData) -> Table:
    checks: list[CheckConstraint] = []
    if k.mysql:
        auth: Column[Any] = Column("src_auth", mysql.ENUM(*FETCHMAIL_AUTH, charset="latin1",
                                                          collation="latin1_general_ci"), nullable=True)
        proto: Column[Any] = Column("protocol", mysql.ENUM(*FETCHMAIL_PROTOCOLS, charset="latin1",
                                                           collation="latin1_general_ci"), nullable=True)
    elif k.sqlite:
        auth = Column("src_auth", Declared("varchar(255)"), nullable=True, server_default=text("NULL"))
        proto = Column("protocol", Declared("text"), nullable=True, server_default=text("NULL"))
    else:
        auth = Column("src_auth", String(15), nullable=False)
        proto = Column("protocol", String(15), nullable=False)
        checks = [CheckConstraint(auth.in_(FETCHMAIL_AUTH)), CheckConstraint(proto.in_(FETCHMAIL_PROTOCOLS))]
    empty = None if k.sqlite else ("''" if k.pg else None)
    return Table(
        k.name("fetchmail"), m,
        k.serial(unsigned=True),
        k.varchar("domain", null=True, default="''"),
        k.varchar("mailbox", default=empty),
        k.varchar("src_server", default=empty),
        k.integer("src_port", default="0" if not k.mysql else "'0'"),
        auth,
        k.varchar("src_user", default=empty),
        k.varchar("src_password", default=empty),
        k.varchar("src_folder", default=empty),
        k.integer("poll_time", unsigned=True, default="10" if k.pg else "'10'"),
        k.boolean("fetchall", False, unsigned=True),
        k.boolean("keep", False, unsigned=True),
        proto,
        k.boolean("usessl", False, unsigned=True),
        k.boolean("sslcertck", False),
        k.varchar("sslcertpath", cs="utf8mb4", null=True, default="''"),
        k.varchar("sslfingerprint", null=True, default="''"),
        k.text("extra_options", null=True, default="NULL" if k.mysql else None),
        k.text("returned_text", null=True, default="NULL" if k.mysql else None),
        k.varchar("mda", null=k.mysql, default="NULL" if k.mysql else empty),
        k.date("date", pg_now=True),
        k.date("created"),
        k.datecurrent("modified", null=k.pg),
        k.boolean("active", False),
        *checks,
        **k.table_args(),
    )


def _log(k: Kit, m: MetaData) -> Table:
    empty = "''" if k.pg else None
    return Table(
        k.name("log"), m,
        k.datetime("timestamp", pg_now=True),
        k.varchar("username", default=empty),
        k.varchar("domain", default=empty),
        k.varchar("action", default=empty),
        k.text("data", default=empty),
        k.serial(),
        *([Index("timestamp", "timestamp"), Index("domain_timestamp", "domain", "timestamp")]
          if k.mysql else []),
        *_pg_index(k, "log_domain_timestamp_idx", "domain", "timestamp"),
        **k.table_args(comment="Postfix Admin - Log"),
    )


def _mailbox(k: Kit, m: MetaData) -> Table:
    empty = "''" if k.pg else None
    return Table(
        k.name("mailbox"), m,
        k.varchar("username", pk=True),
        k.varchar("password", default=empty),
        k.varchar("name", cs="utf8mb4", default=empty),
        k.varchar("maildir", default=empty),
        k.bigint("quota"),
        k.varchar("local_part"),
        k.varchar("domain", null=k.pg),
        k.datetime("created", pg_now=True),
        k.datetime("modified", pg_now=True),
        k.boolean("active", True),
        *_contact(k),
        k.datetime("password_expiry"),
        *([Index("domain", "domain")] if k.mysql else []),
        *_pg_index(k, "mailbox_username_active", "username", "active"),
        *_pg_index(k, "mailbox_domain_idx", "domain"),
        *_pg_fk(k, "domain"),
        **k.table_args(comment="Postfix Admin - Virtual Mailboxes"),
    )


def _merge_trigger(k: Kit, table: Table, function: str, sets: str, where: str) -> None:
    """PostgreSQL: Dovecot's dict quota INSERTs a row per change; a BEFORE INSERT trigger turns an
    insert for an existing key into an add-to-counter UPDATE (PostfixAdmin upgrade 730)."""
    if not k.pg:
        return
    fn = k.name(function)
    body = (f"CREATE OR REPLACE FUNCTION {fn}() RETURNS TRIGGER AS $$ BEGIN "
            f"UPDATE {table.name} SET {sets} WHERE {where}; "
            "IF FOUND THEN RETURN NULL; END IF; RETURN NEW; END; $$ LANGUAGE plpgsql")
    trigger = (f"CREATE TRIGGER {k.name(function.replace('_', ''))} BEFORE INSERT ON {table.name} "
               f"FOR EACH ROW EXECUTE PROCEDURE {fn}()")
    event.listen(table, "after_create", DDL(body))  # type: ignore[no-untyped-call]
    event.listen(table, "after_create", DDL(trigger))  # type: ignore[no-untyped-call]


def _quota(k: Kit, m: MetaData) -> Table:
    t = Table(k.name("quota"), m, k.varchar("username"), k.varchar("path", 100), k.bigint("current"),
              PrimaryKeyConstraint("username", "path"), **k.table_args())
    _merge_trigger(k, t, "merge_quota", "current = NEW.current + current",
                   "username = NEW.username AND path = NEW.path")
    return t


def _quota2(k: Kit, m: MetaData) -> Table:
    t = Table(k.name("quota2"), m, k.varchar("username", 255 if k.sqlite else 100, pk=True),
              k.bigint("bytes"),
              k.integer("messages", default="0" if not k.mysql else "'0'"), **k.table_args())
    _merge_trigger(k, t, "merge_quota2", "bytes = bytes + NEW.bytes, messages = messages + NEW.messages",
                   "username = NEW.username")
    return t


def _vacation(k: Kit, m: MetaData) -> Table:
    cols: list[Any] = [
        k.varchar("email", pk=True),
        k.varchar("subject", cs="utf8mb4"),
        k.text("body", cs="utf8mb4", default="''" if k.pg else None),
        k.date("activefrom"),
        k.date("activeuntil", "'2038-01-18'"),
    ]
    if not k.pg:
        cols.append(k.text("cache", default="''" if k.sqlite else None))
    cols += [
        k.varchar("domain", null=k.pg),
        k.integer("interval_time", default="0" if not k.mysql else "'0'"),
        k.datetime("created", pg_now=True),
        k.datecurrent("modified", null=k.pg),
        k.boolean("active", True),
    ]
    if k.mysql:
        cols.append(Index("email", "email"))
    return Table(k.name("vacation"), m, *cols, *_pg_index(k, "vacation_email_active", "email", "active"),
                 *_pg_fk(k, "domain"), **k.table_args(comment="Postfix Admin - Virtual Vacation"))


def _vacation_notification(k: Kit, m: MetaData) -> Table:
    return Table(
        k.name("vacation_notification"), m,
        k.varchar("on_vacation"),
        k.varchar("notified", default="''" if k.mysql else None),
        k.datecurrent("notified_at"),
        PrimaryKeyConstraint("on_vacation", "notified",
                             name="vacation_notification_pkey" if k.pg else None),
        ForeignKeyConstraint(["on_vacation"], [f"{k.name('vacation')}.email"], ondelete="CASCADE",
                             name=None if k.pg else "vacation_notification_pkey"),
        **k.table_args(collate="utf8mb3", comment="Postfix Admin - Virtual Vacation Notifications"),
    )


_BUILDERS = (_domain, _admin, _alias, _alias_domain, _config, _domain_admins, _fetchmail, _log,
             _mailbox, _quota, _quota2, _vacation, _vacation_notification)


@cache
def metadata_for(dialect: str, prefix: str = "") -> MetaData:
    """The PostfixAdmin tables as that dialect's upgrader creates them (cached, read-only);
    ``prefix`` is PostfixAdmin's ``database_prefix`` (parameter database_table_prefix)."""
    if prefix and not re.fullmatch(r"[A-Za-z0-9_]+", prefix):
        raise ValueError(f"bad table prefix {prefix!r} (letters, digits, _)")
    k = Kit(dialect_family(dialect), prefix)
    m = MetaData()
    for build in _BUILDERS:
        build(k, m)
    return m


def tables_for(dialect: str, prefix: str = "") -> dict[str, Table]:
    """The tables by their PostfixAdmin key (``mailbox``, ``alias`` …), whatever the prefix."""
    return {name[len(prefix):]: t for name, t in metadata_for(dialect, prefix).tables.items()}


def complete_row(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the NOT NULL columns that have no database default filled in the way
    PostfixAdmin fills them (derived from the key), for seeding tests and in-memory data."""
    r = dict(row)
    if table == "domain":
        r.setdefault("description", "")
        r.setdefault("transport", "virtual")
    elif table == "mailbox":
        local, _, domain = str(r["username"]).rpartition("@")
        r.setdefault("password", "")
        r.setdefault("name", "")
        r.setdefault("local_part", local)
        r.setdefault("domain", domain)
        r.setdefault("maildir", f"{domain}/{local}/")
    elif table == "alias":
        r.setdefault("domain", str(r["address"]).rpartition("@")[2])
    elif table == "vacation":
        r.setdefault("subject", "")
        r.setdefault("body", "")
        r.setdefault("domain", str(r["email"]).rpartition("@")[2])
    return r
