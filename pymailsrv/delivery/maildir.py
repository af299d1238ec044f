"""The virtual delivery agent: into the recipient's Maildir through the MailStore.

Implementation notes:
- ``Return-Path:`` and ``Delivered-To:`` are prepended, as Postfix's virtual(8) does; a message
  that already carries our ``Delivered-To:`` for the same address is a mail loop → 5.4.6.
- Files are stored with LF line endings (POSTFIX-SEMANTICS §7; store.base).
- Over quota: bounce 5.2.2 when virtual_overquota_bounce = yes, otherwise defer 4.2.2.
- The store's ``deliver`` returns only once the file and its directory entry are durable.
- With Sieve (delivery.sieve_filter), the scripts decide the folders, flags and the rest, one
  step before the store writes; ``fileinto`` a folder that does not exist (without ``:create``)
  stores into INBOX instead, as Dovecot does without lda_mailbox_autocreate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pymailsrv.config.settings import Settings
from pymailsrv.db.base import Directory
from pymailsrv.delivery.base import DeliveryResult
from pymailsrv.delivery.sieve_filter import Plan, SieveFilter
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.message.lines import header_end, to_lf
from pymailsrv.store.base import FolderNotFound, InvalidFolderName, MailStore, QuotaExceeded
from pymailsrv.types import Account

log = get_logger("virtual")

RELAY = "virtual"


_DELIVERED_TO = re.compile(rb"^delivered-to:[ \t]*<?([^>\n]*?)>?[ \t]*$", re.IGNORECASE | re.MULTILINE)


def has_delivered_to(content: bytes, address: str) -> bool:
    """Does the header carry ``Delivered-To: address`` (case-insensitive)? Content uses LF."""
    want = address.lower().encode()
    end = header_end(content)
    header = content if end < 0 else content[:end]
    return any(m.lower() == want for m in _DELIVERED_TO.findall(header))


class MaildirAgent:
    def __init__(self, settings: Settings, directory: Directory, store: MailStore,
                 sieve: SieveFilter | None = None) -> None:
        self.directory = directory
        self.store = store
        self.sieve = sieve
        self.overquota_bounce = settings.get_bool("virtual_overquota_bounce")
        self.size_limit = settings.get_size("virtual_mailbox_limit")

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
        try:
            if self.sieve is None:
                await self.store.deliver(account, head + body)
                return DeliveryResult(recipient, "sent", "2.0.0", "delivered to maildir", RELAY)
            return await self._filtered(account, sender, recipient, head + body)
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

    async def _filtered(self, account: Account, sender: str, recipient: str, content: bytes) -> DeliveryResult:
        """Deliver as the Sieve scripts say (no script: into INBOX)."""
        assert self.sieve is not None

        async def folders() -> frozenset[str]:
            return frozenset(f.name for f in await self.store.list_folders(account))

        plan = await self.sieve.plan(account, sender, recipient, content, folders)
        if plan is not None and plan.folders is None and any(
                f != "INBOX" and not create for f, _, create, _ in plan.stores):
            plan.folders = await folders()  # only when a fileinto without :create may miss
        if plan is None:
            await self.store.deliver(account, content)
            return DeliveryResult(recipient, "sent", "2.0.0", "delivered to maildir", RELAY)
        if plan.reject is not None:
            return DeliveryResult(recipient, "bounced", "5.7.1", plan.reject, RELAY)
        for folder, flags, create, edited in plan.stores:
            await self._store(account, plan, folder, flags, create, edited or content, recipient)
        if not plan.stores:
            return DeliveryResult(recipient, "sent", "2.0.0", "delivered via sieve", RELAY)
        return DeliveryResult(recipient, "sent", "2.0.0", "delivered to maildir", RELAY)

    async def _store(self, account: Account, plan: Plan, folder: str, flags: tuple[str, ...], create: bool,
                     data: bytes, recipient: str) -> None:
        if folder != "INBOX" and not create and plan.folders is not None and folder not in plan.folders:
            log.info("sieve: <%s>: mailbox %r does not exist, stored into INBOX", recipient, folder)
            folder = "INBOX"
        try:
            delivered = await self.store.deliver(account, data, folder=folder)
        except InvalidFolderName:
            log.info("sieve: <%s>: invalid mailbox name %r, stored into INBOX", recipient, folder)
            folder = "INBOX"
            delivered = await self.store.deliver(account, data)
        if flags:
            await self._flag(account, folder, delivered.filename, flags)

    async def _flag(self, account: Account, folder: str, filename: str, flags: tuple[str, ...]) -> None:
        """imap4flags (RFC 5232) as Maildir flags: set through the folder, as IMAP would."""
        try:
            box = await self.store.open(account, folder)
        except FolderNotFound:
            return
        try:
            await box.sync()
            uids = [m.uid for m in box.messages() if box.path(m.uid).rsplit("/", 1)[-1].startswith(filename)]
            if uids:
                await box.set_flags(uids[-1:], flags, "add")
        finally:
            await box.close()
