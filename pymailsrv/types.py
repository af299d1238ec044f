"""Small value types shared across packages (leaf module: imports nothing of pymailsrv)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

QueueId = NewType("QueueId", str)


@dataclass(frozen=True, slots=True)
class Address:
    """An envelope address split at its last ``@``; the null sender is ``Address("", "")``."""

    local: str
    domain: str

    @classmethod
    def parse(cls, text: str) -> Address:
        """Split ``local@domain`` (no angle brackets); a bare name has an empty domain."""
        local, sep, domain = text.rpartition("@")
        if not sep:
            return cls(text, "")
        return cls(local, domain)

    @property
    def is_null(self) -> bool:
        return not self.local and not self.domain

    def lower(self) -> Address:
        """Lower-cased and stripped, the form every lookup key takes (POSTFIXADMIN-SCHEMA §1)."""
        return Address(self.local.strip().lower(), self.domain.strip().lower().rstrip("."))

    def __str__(self) -> str:
        if not self.domain:
            return self.local
        return f"{self.local}@{self.domain}"


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
