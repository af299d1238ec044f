"""Small value types shared across packages (leaf module: imports nothing of pymailsrv)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType, Protocol

QueueId = NewType("QueueId", str)


@dataclass(slots=True)
class Recipient:
    """An envelope recipient, from RCPT TO through the pipeline into the queue, with the queue's
    per-recipient status."""

    address: str  # the envelope recipient as accepted (after REDIRECT, before alias expansion)
    original: str = ""  # as the client wrote it (Postfix orig_to), when it differs
    notify: tuple[str, ...] = ()  # RFC 3461 NOTIFY: ("SUCCESS", "FAILURE", "DELAY") or ("NEVER",)
    orcpt: str = ""  # RFC 3461 ORCPT, "rfc822;addr" form
    status: str = "pending"  # pending | sent | bounced | deferred
    dsn: str = ""  # last enhanced status code, e.g. "4.4.1"
    reason: str = ""  # last diagnostic text


@dataclass(frozen=True, slots=True)
class Account:
    """A mail user as the protocols see it once authenticated or resolved.

    ``username`` is the canonical (stored, lower-case) login; ``maildir`` is the absolute path of
    the Maildir root (virtual_mailbox_base joined with the stored ``mailbox.maildir``);
    ``quota_bytes`` 0 means unlimited.
    """

    username: str
    maildir: str
    quota_bytes: int = 0
    name: str = ""

    @property
    def domain(self) -> str:
        return self.username.rpartition("@")[2]


class LookupTable(Protocol):
    """A Postfix ``type:name`` table (policy/tables opens them; delivery and policy look up in
    them). Keys are matched as Postfix does for the type (exact, case-folded for texthash/hash;
    first match for cidr/regexp)."""

    async def get(self, key: str) -> str | None: ...
