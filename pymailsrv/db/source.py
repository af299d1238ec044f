"""What the lookup rules read: rows by primary key from the four tables they use, asked in one go.

A ``Source`` answers a ``Keys`` request (domain names, alias addresses, mailbox usernames) with
``Rows``, in one database round trip however many keys are asked: on a database server the rules
(``db.lookup``) ask for every key an address can need at once, so a recipient costs one
statement, not one per key. SQL in ``db.directory``, dicts in ``db.memory``, a TTL cache in front of either in
``db.cache``.

Contract of ``read``: keys arrive normalised (``rules.normalize``); every asked key is in the
answer, mapped to its row or to None. Aliases, alias domains and mailboxes count only when
active (the rules never use inactive ones); domain rows come active or not (``is_local_domain``
tells "disabled" from "unknown"). Rows from ``read`` carry no password: ``password_row`` reads
the one row a login needs, active or not, never cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DomainRow:
    domain: str
    transport: str | None
    backupmx: bool
    active: bool


@dataclass(frozen=True, slots=True)
class MailboxRow:
    username: str
    password: str  # "" in rows from Source.read
    name: str
    maildir: str
    quota: int
    active: bool


class Keys:
    """Primary keys to read: a domain name asks for its ``domain`` and ``alias_domain`` rows."""

    __slots__ = ("aliases", "domains", "mailboxes")

    def __init__(self, domains: set[str] | None = None, aliases: set[str] | None = None,
                 mailboxes: set[str] | None = None) -> None:
        self.domains = domains if domains is not None else set()
        self.aliases = aliases if aliases is not None else set()
        self.mailboxes = mailboxes if mailboxes is not None else set()

    def __bool__(self) -> bool:
        return bool(self.domains or self.aliases or self.mailboxes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keys) and (self.domains, self.aliases, self.mailboxes) == \
            (other.domains, other.aliases, other.mailboxes)

    def __repr__(self) -> str:
        return f"Keys(domains={self.domains}, aliases={self.aliases}, mailboxes={self.mailboxes})"

    def update(self, other: Keys) -> None:
        self.domains |= other.domains
        self.aliases |= other.aliases
        self.mailboxes |= other.mailboxes

    def size(self) -> int:
        return len(self.domains) + len(self.aliases) + len(self.mailboxes)


class Rows:
    """The answer to a Keys request."""

    __slots__ = ("aliases", "domains", "mailboxes", "targets")

    def __init__(self, domains: dict[str, DomainRow | None] | None = None,
                 targets: dict[str, str | None] | None = None, aliases: dict[str, str | None] | None = None,
                 mailboxes: dict[str, MailboxRow | None] | None = None) -> None:
        self.domains = domains if domains is not None else {}
        self.targets = targets if targets is not None else {}  # alias_domain -> active target
        self.aliases = aliases if aliases is not None else {}  # address -> goto of the active row
        self.mailboxes = mailboxes if mailboxes is not None else {}  # username -> active row

    def update(self, other: Rows) -> None:
        self.domains.update(other.domains)
        self.targets.update(other.targets)
        self.aliases.update(other.aliases)
        self.mailboxes.update(other.mailboxes)

    def missing(self, keys: Keys) -> Keys:
        """The part of ``keys`` this holds no answer for."""
        return Keys({d for d in keys.domains if d not in self.domains or d not in self.targets},
                    {a for a in keys.aliases if a not in self.aliases},
                    {m for m in keys.mailboxes if m not in self.mailboxes})

    def only(self, keys: Keys) -> Rows:
        """The answers for ``keys`` (each asked key present: None where nothing was found)."""
        return Rows({d: self.domains.get(d) for d in keys.domains},
                    {d: self.targets.get(d) for d in keys.domains},
                    {a: self.aliases.get(a) for a in keys.aliases},
                    {m: self.mailboxes.get(m) for m in keys.mailboxes})

    @classmethod
    def nothing(cls, keys: Keys) -> Rows:
        return cls().only(keys)


class Source(Protocol):
    # True for a database server, where asking many keys at once saves round trips; False
    # in-process (SQLite, dicts), where reading just the keys the rules walk costs least
    batches: bool

    async def read(self, keys: Keys) -> Rows:
        """Every asked key with its row or None, in one round trip (see the module docstring).
        Raises ``errors.TemporaryFailure`` when the database cannot be reached."""
        ...

    async def addresses(self, domain: str, limit: int) -> frozenset[str] | None:
        """Every active alias address and mailbox username of ``domain`` (normalised; the
        catch-all ``@domain`` included), in one round trip; None if there are more than
        ``limit``. The cache's roster: a key not in it needs no read."""
        ...

    async def password_row(self, username: str) -> MailboxRow | None:
        """The ``mailbox`` row with its password, active or not; never cached."""
        ...

    async def stamp(self) -> object:
        """A value that changes whenever an admin tool records a change (the newest id of
        PostfixAdmin's ``log`` table, which its web UI and our CLI append to with every edit);
        None when there is none to read. The cache polls it to drop its entries early."""
        ...

    async def close(self) -> None: ...


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
