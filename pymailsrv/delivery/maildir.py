"""The virtual delivery agent: into the recipient's Maildir through the MailStore.

Implementation notes:
- ``Return-Path:`` and ``Delivered-To:`` are prepended, as Postfix's virtual(8) does; a message
  that already carries our ``Delivered-To:`` for the same address is a mail loop → 5.4.6.
- Files are stored with LF line endings (POSTFIX-SEMANTICS §7; store.base).
- Over quota: bounce 5.2.2 when virtual_overquota_bounce = yes, otherwise defer 4.2.2.
- The store's ``deliver`` returns only once the file and its directory entry are durable.
- A message carrying ``virtual_junk_header`` (the sender_auth stage adds it for DMARC
  p=quarantine) goes into ``virtual_junk_folder``, created when missing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pymailsrv.config.settings import Settings
from pymailsrv.db.base import Directory
from pymailsrv.delivery.base import DeliveryResult
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.message.lines import header_end, to_lf
from pymailsrv.store.base import MailStore, QuotaExceeded

log = get_logger("virtual")

RELAY = "virtual"


_DELIVERED_TO = re.compile(rb"^delivered-to:[ \t]*<?([^>\n]*?)>?[ \t]*$", re.IGNORECASE | re.MULTILINE)


def has_delivered_to(content: bytes, address: str) -> bool:
    """Does the header carry ``Delivered-To: address`` (case-insensitive)? Content uses LF."""
    want = address.lower().encode()
    end = header_end(content)
    header = content if end < 0 else content[:end]
    return any(m.lower() == want for m in _DELIVERED_TO.findall(header))


def header_field(name: str, value: str) -> re.Pattern[bytes]:
    """A pattern for the header field ``name: value`` (case-insensitive, blanks around the value
    ignored), for ``has_field``."""
    return re.compile(rb"^" + re.escape(name.strip().encode()) + rb":[ \t]*" + re.escape(value.strip().encode())
                      + rb"[ \t]*$", re.IGNORECASE | re.MULTILINE)


def has_field(content: bytes, field: re.Pattern[bytes]) -> bool:
    """Does the header block (LF line ends) carry the field?"""
    end = header_end(content)
    return field.search(content if end < 0 else content[:end]) is not None


class MaildirAgent:
    def __init__(self, settings: Settings, directory: Directory, store: MailStore) -> None:
        self.directory = directory
        self.store = store
        self.overquota_bounce = settings.get_bool("virtual_overquota_bounce")
        self.size_limit = settings.get_size("virtual_mailbox_limit")
        name, _, value = settings.get_str("virtual_junk_header").partition(":")
        self.junk = header_field(name, value) if name.strip() else None
        self.junk_folder = settings.get_str("virtual_junk_folder")

    async def deliver(self, sender: str, recipients: Sequence[str], content: bytes) -> list[DeliveryResult]:
        body = to_lf(content)
        return [await self._one(sender, r, body) for r in recipients]

    async def _one(self, sender: str, recipient: str, body: bytes) -> DeliveryResult:
        try:
            account = await self.directory.mailbox(recipient)
        except TemporaryFailure:
            return DeliveryResult(recipient, "deferred", "4.3.0", "mailbox lookup failed", RELAY)
        if account is None:
            return DeliveryResult(recipient, "bounced", "5.1.1", f'unknown user: "{recipient.lower()}"', RELAY)
        if has_delivered_to(body, recipient):
            return DeliveryResult(recipient, "bounced", "5.4.6", "mail forwarding loop for " + recipient, RELAY)
        if self.size_limit and len(body) > self.size_limit:
            return DeliveryResult(recipient, "bounced", "5.2.3", "message file too big", RELAY)
        head = f"Return-Path: <{sender}>\nDelivered-To: {recipient}\n".encode()
        junk = self.junk is not None and bool(self.junk_folder) and has_field(body, self.junk)
        try:
            await self.store.deliver(account, head + body, folder=self.junk_folder if junk else "INBOX")
        except QuotaExceeded:
            if self.overquota_bounce:
                return DeliveryResult(recipient, "bounced", "5.2.2",
                                      f"maildir delivery failed: {recipient}: mailbox full", RELAY)
            return DeliveryResult(recipient, "deferred", "4.2.2",
                                  f"maildir delivery failed: {recipient}: mailbox full", RELAY)
        except (OSError, TemporaryFailure) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "temporary failure"
            log.warning("maildir delivery to %s failed: %s", recipient, why)
            return DeliveryResult(recipient, "deferred", "4.2.0", f"maildir delivery failed: {why}", RELAY)
        return DeliveryResult(recipient, "sent", "2.0.0", "delivered to maildir", RELAY)
