"""Small value types shared across packages (leaf module: imports nothing of pymailsrv)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

QueueId = NewType("QueueId", str)


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
