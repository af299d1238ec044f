"""What the translation collects while it reads a site: the pymailsrv parameters it will write
(each with where it came from), the databases named, the Maildir locations. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from pymailsrv.migrate.report import Report
from pymailsrv.migrate.sql import Database


@dataclass(frozen=True, slots=True)
class Value:
    text: str
    origin: str  # "main.cf:12", "dovecot.conf:40"


@dataclass
class Site:
    report: Report = field(default_factory=Report)
    values: dict[str, Value] = field(default_factory=dict)
    databases: list[tuple[Database, str]] = field(default_factory=list)  # (database, where)
    table_prefixes: list[tuple[str, str]] = field(default_factory=list)  # (prefix, where)
    # Where delivery and IMAP found Maildirs: (template, where); a template is an absolute path
    # with Dovecot's %d %n %u or "{maildir}" for mailbox.maildir.
    postfix_maildirs: list[tuple[str, str]] = field(default_factory=list)
    dovecot_maildirs: list[tuple[str, str]] = field(default_factory=list)
    run_as: list[str] = field(default_factory=list)  # "uid 5000 (virtual_uid_maps)" …
    sieve: bool = False  # Dovecot ran Sieve at delivery
    layout: tuple[str, str] | None = None  # (the Maildir template used, virtual_mailbox_base)
    layout_known: bool = True  # the template is one of PostfixAdmin's maildir layouts

    def set(self, name: str, text: str, origin: str) -> None:
        self.values[name] = Value(text, origin)

    def database(self, db: Database, where: str) -> None:
        self.databases.append((db, where))
