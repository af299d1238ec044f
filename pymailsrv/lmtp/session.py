"""One LMTP connection: the SMTP session (smtp/session.py) with LMTP's command table.

Implementation notes
- Everything but LHLO, RCPT and DATA is the SMTP session's: the line reader, pipelining, error
  limits, timeouts, MAIL parsing, RSET/NOOP/QUIT (RFC 2033 §4: LMTP is SMTP with LHLO and one
  reply per recipient after DATA).
- STARTTLS is SMTP's command (RFC 3207 §4.2: what the client pipelined after it is discarded,
  LHLO must be sent again), offered over TCP when tls_cert_file is set.
- Nothing is queued: a recipient's reply after DATA says whether its Maildir has the message
  (fsynced), as Dovecot's lmtp does. A temporary failure is the client's to retry (Postfix keeps
  the message in its queue), so there is no second queue to lose mail in.
- The message stages of smtpd (restrictions, cleanup) do not run: the MTA in front ran its own.
  Delivery goes through the same virtual Transport the queue manager uses (delivery/maildir.py),
  so what applies at delivery (quota, the loop check, delivery filters) applies to LMTP too.
"""

from __future__ import annotations

import base64
import os
import secrets
import ssl
from dataclasses import dataclass
from typing import Any

from pymailsrv.config.settings import Settings
from pymailsrv.delivery.base import Transport
from pymailsrv.errors import TemporaryFailure
from pymailsrv.queue.base import Envelope
from pymailsrv.smtp.context import ListenerSpec, Services
from pymailsrv.smtp.session import SmtpConnection, SmtpSession
from pymailsrv.store.base import MailStore
from pymailsrv.types import QueueId


@dataclass(frozen=True, slots=True)
class LmtpOptions:
    """The LMTP parameters (Dovecot's names), read once."""

    greeting: str = "pymailsrv ready."
    rcpt_check_quota: bool = True
    quota_full_tempfail: bool = False
    quota_exceeded_message: str = "Quota exceeded (mailbox for user is full)"
    add_received_header: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> LmtpOptions:
        return cls(greeting=settings.expanded("login_greeting"),
                   rcpt_check_quota=settings.get_bool("lmtp_rcpt_check_quota"),
                   quota_full_tempfail=settings.get_bool("quota_full_tempfail"),
                   quota_exceeded_message=settings.expanded("quota_exceeded_message"),
                   add_received_header=settings.get_bool("lmtp_add_received_header"))


@dataclass(frozen=True, slots=True)
class LmtpContext:
    """What LMTP sessions need beyond the SMTP session's Services."""

    options: LmtpOptions
    store: MailStore  # quota at RCPT
    delivery: Transport  # the virtual (Maildir) transport


def transaction_id() -> QueueId:
    """A transaction id as Dovecot's lmtp prints them (22 characters of base64, unpadded)."""
    raw = secrets.token_bytes(12) + os.getpid().to_bytes(4, "big")
    return QueueId(base64.b64encode(raw).decode().rstrip("="))


class DirectDelivery:
    """The Queue seam of an LMTP session: ids only. LMTP delivers as it receives (lmtp/commands),
    so ``submit`` is never called; it refuses rather than lose a message if it ever is."""

    def new_queue_id(self) -> QueueId:
        return transaction_id()

    async def submit(self, envelope: Envelope, content: bytes, *, queue_id: QueueId | None = None) -> QueueId:
        raise TemporaryFailure("LMTP does not queue")


class LmtpSession(SmtpSession):
    def __init__(self, services: Services, listener: ListenerSpec, conn: SmtpConnection) -> None:
        super().__init__(services, listener, conn)
        assert isinstance(conn, LmtpConnection)
        self.lmtp = conn.context

    def command_table(self) -> dict[str, Any]:
        from pymailsrv.lmtp.commands import COMMANDS

        return COMMANDS

    def starttls_offered(self) -> bool:
        """STARTTLS over TCP when a certificate is configured (as Dovecot's lmtp with ssl = yes),
        for LMTP between machines; a UNIX socket needs none."""
        return not self.tls_active and self.listener.tls is not None and bool(self.state.client_address)


class LmtpConnection(SmtpConnection):
    session_class = LmtpSession

    def __init__(self, services: Services, listener: ListenerSpec, context: LmtpContext) -> None:
        super().__init__(services, listener)
        self.context = context


def lmtp_listener(tls: ssl.SSLContext | None = None) -> ListenerSpec:
    """``tls``: the context STARTTLS uses (None: not offered)."""
    return ListenerSpec("lmtp", tls)
