"""``pymailsrv import-config``: a Postfix + Dovecot site's configuration → a pymailsrv.conf that
serves the same domains from the same PostfixAdmin database and Maildirs, with a report of every
setting carried, translated or not carried (and why).

``import_site`` reads (postfix.py, dovecot.py), then decides what only the whole picture tells:
the one database, the table prefix, virtual_mailbox_base; then checks the result loads.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError, ConfigErrors
from pymailsrv.migrate import dovecot, postfix
from pymailsrv.migrate.report import Report
from pymailsrv.migrate.site import Site
from pymailsrv.migrate.sql import Database

# Dovecot paths → the PostfixAdmin maildir layout (POSTFIXADMIN-SCHEMA §3) they match.
_LAYOUTS = (
    (re.compile(r"(.*?)/?\{maildir\}/?"), "mailbox.maildir as stored"),
    (re.compile(r"(.*)/%d/%n/?"), "mailbox.maildir = domain/local/ (PostfixAdmin's default layout)"),
    (re.compile(r"(.*)/%u/?"), "mailbox.maildir = local@domain/ (PostfixAdmin's domain_path = NO)"),
    (re.compile(r"(.*)/%d/%u/?"), "mailbox.maildir = domain/local@domain/ (PostfixAdmin's domain_in_mailbox)"),
)


@dataclass(frozen=True, slots=True)
class Result:
    text: str  # the pymailsrv.conf
    report: Report


def import_site(postfix_dir: str | None, dovecot_dir: str | None, *, check: bool = False) -> Result:
    """``check``: also read the database's mailbox rows and check every Maildir is where the
    written configuration makes pymailsrv look (verify.py)."""
    site = Site()
    if postfix_dir:
        postfix.read(postfix_dir, site)
    if dovecot_dir:
        dovecot.read(dovecot_dir, site)
    _database(site)
    _table_prefix(site)
    _maildir_base(site)
    for what in dict.fromkeys(site.run_as):
        site.report.translated(f"run as {what}", "start pymailsrv as this user (it owns the Maildirs)")
    if check:
        from pymailsrv.migrate.verify import check_maildirs

        asyncio.run(check_maildirs(site))
    elif site.layout is not None and not site.layout_known:
        site.report.dropped("Maildir layout", "not a PostfixAdmin layout: only the check (import-config "
                            "without --no-check) can tell whether each mailbox.maildir matches", blocking=True)
    _check(site)
    return Result(render(site, postfix_dir, dovecot_dir), site.report)


def _database(site: Site) -> None:
    # Dovecot's connection first: it is the one that reads passwords.
    ordered = sorted(site.databases, key=lambda d: not d[1].startswith("dovecot"))
    if not ordered:
        site.report.dropped("database", "no map or passdb reads PostfixAdmin's tables: set database_url",
                            blocking=True)
        return
    db, where = ordered[0]
    site.set("database_url", db.url(), where)
    site.report.translated(f"database ({where})", f"database_url = {db.url(hide_password=True)}")
    if db.kind == "sqlite":
        site.report.translated(f"database ({where}) SQLite", "pymailsrv switches the file to WAL journaling: "
                               "whoever else writes it (PostfixAdmin's web server user) needs write access to "
                               "its directory too")
    if db.kind == "mysql" and db.host == "localhost":
        site.report.translated(f"database ({where}) host localhost", "libmysqlclient takes localhost for the "
                               "Unix socket; pymailsrv connects over TCP: add ?unix_socket=PATH to database_url "
                               "if MariaDB does not listen on 127.0.0.1")
    others: dict[tuple[str, str, int, str], tuple[Database, list[str]]] = {}
    for other, other_where in ordered[1:]:
        if other.identity != db.identity:
            others.setdefault(other.identity, (other, []))[1].append(other_where)
    for other, wheres in others.values():
        site.report.dropped(", ".join(wheres), f"read another database ({other.url(hide_password=True)}): "
                            "pymailsrv reads one, database_url")


def _table_prefix(site: Site) -> None:
    prefixes = {p for p, _ in site.table_prefixes}
    if len(prefixes) == 1:
        prefix, where = site.table_prefixes[0]
        site.set("database_table_prefix", prefix, where)
        site.report.translated(where, f"database_table_prefix = {prefix}")
    elif len(prefixes) > 1:
        site.report.dropped("database_table_prefix", f"queries use several prefixes {sorted(prefixes)}",
                            blocking=True)


def _base_of(template: str) -> tuple[str, str, bool] | None:
    """(virtual_mailbox_base, the maildir layout it assumes, whether that is certain without
    looking at the rows) for a Dovecot path, or None if no base can serve it."""
    for pattern, layout in _LAYOUTS:
        m = pattern.fullmatch(template)
        if m and "%" not in m.group(1) and m.group(1).startswith("/"):
            return m.group(1).rstrip("/") or "/", layout, True
    # e.g. /var/vmail/%d/%n/Maildir: the maildir column may hold "domain/local/Maildir/" (a
    # maildir_name_hook); only the rows can tell
    static, sep, rest = template.partition("/%")
    if sep and "{maildir}" not in template and static.startswith("/") and "/" in static:
        return static, f"mailbox.maildir = %{rest.rstrip('/')}/ (to be checked against the rows)", False
    return None


def _maildir_base(site: Site) -> None:
    found: list[tuple[str, str, str, str, bool]] = []  # base, layout, where, template, known layout
    for template, where in [*site.dovecot_maildirs, *site.postfix_maildirs]:
        got = _base_of(template)
        if got is None:
            site.report.dropped(where, f"Maildirs at {template}: pymailsrv finds a mailbox at "
                                "virtual_mailbox_base/mailbox.maildir only", blocking=True)
            continue
        found.append((got[0], got[1], where, template, got[2]))
    if not found:
        return
    base, layout, where, template, known = found[0]
    site.set("virtual_mailbox_base", base, where)
    site.layout = (template, base)
    site.layout_known = known
    site.report.translated(where, f"virtual_mailbox_base = {base}, assuming {layout}")
    for other, _, other_where, _, _ in found[1:]:
        if other != base:
            site.report.dropped(other_where, f"{other} differs from where Dovecot reads the mail ({base}): "
                                f"{base} is used")


def _check(site: Site) -> None:
    """Drop what pymailsrv would refuse to load (a value of the wrong type, a missing file)."""
    for _ in range(len(site.values) + 1):
        names = list(site.values)
        origins = {n: ("import", i) for i, n in enumerate(names)}
        try:
            Settings({n: v.text for n, v in site.values.items()}, origins=origins).validate()
            return
        except ConfigErrors as exc:
            errors = exc.errors
        except ConfigError as exc:
            errors = [exc]
        for err in errors:
            if err.file == "import" and err.line is not None:
                name = names[err.line]
                site.report.dropped(f"{site.values[name].origin} {name}", f"pymailsrv refuses the value: "
                                    f"{err.message}", blocking=True)
                del site.values[name]
            else:
                site.report.dropped("configuration", err.message, blocking=True)
                return


def render(site: Site, postfix_dir: str | None, dovecot_dir: str | None) -> str:
    read = " and ".join(d for d in (postfix_dir, dovecot_dir) if d)
    lines = [f"# Written by pymailsrv import-config from {read}.",
             "# Each parameter names where it came from; the report printed with it lists what was",
             "# translated and what was not carried. Set data_directory (default /var/lib/pymailsrv).", ""]
    for name, value in site.values.items():
        lines.append(f"# {value.origin}")
        lines.append(f"{name} = {value.text}".rstrip())
    return "\n".join(lines) + "\n"
