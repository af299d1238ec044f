"""The Directory: what the mail protocols ask of the PostfixAdmin database (interfaces only).

Every key is lower-cased and stripped in Python before it reaches SQL (SQLite and PostgreSQL
compare exactly, MySQL does not; POSTFIXADMIN-SCHEMA §1). Lookups follow POSTFIXADMIN-SCHEMA §4.
Implementations raise ``pymailsrv.errors.TemporaryFailure`` when the database cannot be reached,
so callers answer 4xx / ``NO [UNAVAILABLE]`` rather than "user unknown".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pymailsrv.types import Account


def normalize(text: str) -> str:
    """The form of every lookup key: stripped, lower case, no trailing dot on the domain. Two
    addresses are the same to the Directory when their normalized forms are equal."""
    return text.strip().lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class PasswordEntry:
    """A ``mailbox`` row as the Authenticator needs it (the hash is never compared in SQL)."""

    username: str  # the stored spelling, adopted as the login (Dovecot's ``username AS user``)
    password: str  # the stored hash, with or without a {SCHEME} prefix
    active: bool
    account: Account


@dataclass(frozen=True, slots=True)
class Vacation:
    """An active PostfixAdmin ``vacation`` row (active, and now inside activefrom .. activeuntil)."""

    email: str
    subject: str
    body: str
    interval: int  # seconds between two replies to one sender; 0: reply once per absence


class Vacations(Protocol):
    """PostfixAdmin's ``vacation`` and ``vacation_notification`` tables, as vacation.pl uses them.
    Read on every call (no cache): an edit in PostfixAdmin counts for the next message. Raise
    TemporaryFailure when the database cannot be reached."""

    async def away(self, email: str) -> Vacation | None:
        """The vacation of the mailbox ``email`` if it is active now, else None."""
        ...

    async def due(self, vacation: Vacation, sender: str) -> bool:
        """Whether ``sender`` is to be answered now; when it is, that is recorded at once (a
        second call for the same sender within the interval says False). Notifications from
        before the vacation's ``activefrom`` do not count."""
        ...

    async def close(self) -> None: ...


class Directory(Protocol):
    async def is_local_domain(self, domain: str) -> bool:
        """A domain we deliver for: an active ``domain`` row, not backupmx, or an active alias domain."""
        ...

    async def is_relay_domain(self, domain: str) -> bool:
        """A domain we accept and forward (backupmx = 1, or transport smtp:/relay:)."""
        ...

    async def transport(self, domain: str) -> str | None:
        """The ``domain.transport`` column of the active domain row (``virtual``, ``smtp:[h]`` …)."""
        ...

    async def resolve(self, address: str, *, autoreply: bool = False) -> list[str]:
        """Final recipients of ``address`` after virtual alias expansion (recursive, alias domains,
        catch-all, recipient delimiter); an address with no alias resolves to ``[address]``.
        Order is stable (first seen first), duplicates removed. PostfixAdmin's vacation
        pseudo-targets (``user#domain@autoreply.domain``) are dropped, or with ``autoreply`` kept
        as they are (see ``is_vacation_target``)."""
        ...

    async def is_vacation_target(self, address: str) -> bool:
        """A PostfixAdmin vacation pseudo-target: ``#`` in the local part, a domain not hosted here."""
        ...

    async def mailbox(self, address: str) -> Account | None:
        """The active mailbox for ``address`` (also through an alias domain), or None."""
        ...

    async def password_entry(self, login: str) -> PasswordEntry | None:
        """The mailbox row for a login name, active or not (the caller refuses inactive ones)."""
        ...

    async def login_owns(self, login: str, address: str) -> bool:
        """smtpd_sender_login_maps semantics: may ``login`` send as ``address``? True for its own
        mailbox address and for aliases whose targets include the login."""
        ...

    async def prefetch(self, addresses: Sequence[str]) -> None:
        """Read what lookups of ``addresses`` (the recipients of one message) will need, together:
        one round trip instead of one per recipient; the lookups that follow within the cache TTL
        need none. Nothing without a cache."""
        ...

    async def close(self) -> None: ...
