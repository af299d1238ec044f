"""The policy seam: lookup tables and the restriction engine as the SMTP side sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from pymailsrv.types import LookupTable as LookupTable  # the tables' interface, for policy's users

Stage = Literal["connect", "helo", "mail", "rcpt", "data", "end_of_data"]


@dataclass(slots=True)
class SmtpState:
    """Everything a restriction may look at; the SMTP session keeps it current."""

    client_address: str
    client_name: str = "unknown"
    reverse_client_name: str = "unknown"
    client_port: int = 0
    helo_name: str = ""
    protocol: str = "SMTP"
    sender: str | None = None  # None before MAIL FROM; "" for the null sender
    recipient: str = ""
    recipient_count: int = 0
    sasl_method: str = ""
    sasl_username: str = ""
    tls: bool = False
    size: int = 0
    queue_id: str = ""
    instance: str = ""
    service: str = "smtpd"  # smtpd | submission | smtps
    pipelining_violation: bool = False  # commands sent ahead before it was allowed
    encryption_cipher: str = ""
    # additive (policy engineer): sent to policy servers as Postfix does
    server_address: str = ""  # the local address the client connected to
    server_port: int = 0
    encryption_protocol: str = ""  # e.g. TLSv1.3
    encryption_keysize: int = 0


Action = Literal["permit", "reject", "defer", "dunno"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of a restriction list: ``permit``/``dunno`` let the command through."""

    action: Action = "dunno"
    code: int = 0  # SMTP reply code for reject/defer
    dsn: str = ""  # enhanced status code
    text: str = ""  # reply text after the enhanced code
    # Side effects of access-map actions that do not decide (HOLD, DISCARD, REDIRECT, FILTER,
    # PREPEND): (kind, value) pairs the session applies to the transaction. Kinds are lower-case:
    # ("hold", reason), ("discard", reason), ("redirect", address), ("filter", "transport:dest"),
    # ("prepend", "Header: value"), ("bcc", address); a DISCARD decision also permits.
    effects: tuple[tuple[str, str], ...] = field(default=())

    @property
    def refused(self) -> bool:
        return self.action in ("reject", "defer")

    def reply(self) -> str:
        return " ".join(part for part in (str(self.code) if self.code else "", self.dsn, self.text) if part)


class Restrictions(Protocol):
    async def check(self, stage: Stage, state: SmtpState) -> Decision:
        """Evaluate the restriction lists due at ``stage`` (with smtpd_delay_reject the client,
        helo and sender lists run at ``rcpt``). Logs rejects as Postfix does."""
        ...
