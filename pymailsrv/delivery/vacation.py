"""The vacation agent: PostfixAdmin's out-of-office reply (what its vacation.pl does behind
Postfix's ``vacation`` pipe), for the ``user#domain@autoreply.domain`` pseudo-targets that
PostfixAdmin adds to a mailbox's alias while its user is away.

Implementation notes:

* The agent never fails a delivery for a reason of the message: whether or not a reply goes out,
  the pseudo-recipient is done (``delivered via vacation service``, as Postfix logs the pipe).
  Only a database that cannot be reached defers it (4.3.0), so the reply is decided later.
* No reply (vacation.pl, RFC 3834 §2): to mail marked automatic, bulk, list or spam
  (``autoreply.header_refusal``); without From:, To: or Message-ID:; from the null sender, the
  user's own address or an address of a program or list (the envelope sender, From: and
  Reply-To: are checked); from a sender who is among its own To:/Cc: recipients; when the
  vacation row is not active now; to a sender already answered within the interval (recorded in
  ``vacation_notification`` before the reply is queued, as vacation.pl does).
* The reply goes through the queue (``ReplyQueue``: non_smtpd_pipeline, then the spool), so it
  is retried, bounced to postmaster at worst and can be signed. Its envelope sender is the null
  address (RFC 3834 §3, as Pigeonhole's vacation): a reply to a reply never comes back to us.
"""

from __future__ import annotations

import email.header
import email.utils
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Protocol

from pymailsrv.autoreply import Reply, compose_reply, header_refusal, parse_headers, recipients_in_headers
from pymailsrv.autoreply.rules import sender_refusal
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.db.base import Vacation, Vacations
from pymailsrv.delivery.base import DeliveryResult
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import get_logger

log = get_logger("vacation")

DELIVERED = "delivered via vacation service"


class ReplyQueue(Protocol):
    async def submit_generated(self, sender: str, recipients: Sequence[str], content: bytes) -> str | None:
        """Queue mail this server writes (after non_smtpd_pipeline); the queue id, or None when a
        stage stopped it. Raises TemporaryFailure when it cannot be spooled."""
        ...


def vacation_owner(pseudo: str, delimiters: str = "") -> str:
    """``alice#example.com@autoreply.example.com`` -> ``alice@example.com`` (the first ``#`` is
    the ``@``; a recipient_delimiter extension is dropped, as vacation.pl does)."""
    local = pseudo.rpartition("@")[0]
    user, _, domain = local.partition("#")
    for ch in delimiters:
        if ch in user[1:]:
            user = user[: user.index(ch, 1)]
    return f"{user}@{domain}".lower()


def _decoded(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


class VacationAgent:
    """Implements ``delivery.base.Transport`` for the ``vacation`` route."""

    def __init__(self, vacations: Vacations, *, hostname: str, recipient_delimiter: str = "",
                 clock: Clock | None = None) -> None:
        self.vacations = vacations
        self.hostname = hostname
        self.delimiters = recipient_delimiter
        self.clock = clock or SystemClock()
        self.replies: ReplyQueue | None = None  # the queue manager, attached once it exists

    def attach(self, replies: ReplyQueue) -> None:
        self.replies = replies

    async def deliver(self, sender: str, recipients: Sequence[str], content: bytes) -> list[DeliveryResult]:
        out = []
        for rcpt in recipients:
            try:
                await self._one(sender, vacation_owner(rcpt, self.delimiters), content)
            except TemporaryFailure as exc:
                out.append(DeliveryResult(rcpt, "deferred", "4.3.0", f"vacation: {exc}", "vacation"))
                continue
            out.append(DeliveryResult(rcpt, "sent", "2.0.0", DELIVERED, "vacation"))
        return out

    async def _one(self, sender: str, owner: str, content: bytes) -> None:
        headers = parse_headers(content)
        why = self._refusal(sender, owner, headers)
        vacation = None
        if why is None:
            vacation = await self.vacations.away(owner)
            if vacation is None:
                why = "no active vacation"
        if why is None and vacation is not None and not await self.vacations.due(vacation, sender):
            why = "already answered"
        if why is not None or vacation is None:
            log.info("no reply to <%s> for <%s>: %s", sender, owner, why)
            return
        await self._send(vacation, sender, headers)

    @staticmethod
    def _refusal(sender: str, owner: str, headers: EmailMessage) -> str | None:
        why = header_refusal(headers)
        if why is not None:
            return why
        for name in ("From", "To", "Message-ID"):
            if not str(headers.get(name, "") or "").strip():
                return f"no {name}: header"  # vacation.pl answers only complete messages
        why = sender_refusal(sender, [owner])
        for field in ("from", "reply-to"):
            for addr in recipients_in_headers(headers, (field,)):
                why = why or sender_refusal(addr, [owner])
        if why is not None:
            return why
        if sender.lower() in recipients_in_headers(headers):
            return "sender among the recipients"
        return None

    async def _send(self, vacation: Vacation, sender: str, headers: EmailMessage) -> None:
        if self.replies is None:
            raise TemporaryFailure("the queue is not ready for replies")
        subject = vacation.subject.replace("$SUBJECT", _decoded(str(headers.get("Subject", "") or "")))
        reply = Reply(sender=vacation.email, to=sender, subject=subject, body=vacation.body)
        msgid = email.utils.make_msgid("vacation", domain=self.hostname).strip("<>")
        data = compose_reply(reply, headers, hostname=self.hostname, now=self.clock.time(), message_id=msgid)
        qid = await self.replies.submit_generated("", [sender], data)
        if qid is None:
            log.info("reply to <%s> for <%s> stopped by the pipeline", sender, vacation.email)
        else:
            log.info("%s: reply to <%s> for <%s>", qid, sender, vacation.email)
