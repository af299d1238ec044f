"""The queue seam: what the SMTP side hands over after DATA (interfaces and the envelope type)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pymailsrv.types import QueueId


@dataclass(slots=True)
class Recipient:
    address: str  # the envelope recipient as accepted (after REDIRECT, before alias expansion)
    original: str = ""  # as the client wrote it (Postfix orig_to), when it differs
    notify: tuple[str, ...] = ()  # RFC 3461 NOTIFY: ("SUCCESS", "FAILURE", "DELAY") or ("NEVER",)
    orcpt: str = ""  # RFC 3461 ORCPT, "rfc822;addr" form
    status: str = "pending"  # pending | sent | bounced | deferred
    dsn: str = ""  # last enhanced status code, e.g. "4.4.1"
    reason: str = ""  # last diagnostic text


@dataclass(slots=True)
class Envelope:
    sender: str  # "" is the null sender <>
    recipients: list[Recipient]
    client_name: str = "localhost"
    client_address: str = "127.0.0.1"
    helo: str = ""
    protocol: str = "ESMTP"
    sasl_method: str = ""
    sasl_username: str = ""
    arrival: float = 0.0
    dsn_ret: str = ""  # RFC 3461 RET=FULL|HDRS
    dsn_envid: str = ""
    hold: bool = False  # an access-map HOLD action
    filter: str = ""  # an access-map FILTER transport:destination, overrides content_filter
    skip_filter: bool = False  # mail re-injected by the content filter
    smtputf8: bool = False
    body_type: str = ""  # 7BIT | 8BITMIME | BINARYMIME
    attributes: dict[str, str] = field(default_factory=dict)


class Spool(Protocol):
    async def put(self, envelope: Envelope, content: bytes) -> QueueId:
        """Store a message durably: returns only after the file and its directory entry are
        fsynced (the caller then answers 250). Raises TemporaryFailure on disk errors."""
        ...


class Queue(Protocol):
    """What SMTP submits to. ``submit`` may deliver locally before returning (fast path), but
    returns only when every recipient is either delivered or spooled durably."""

    async def submit(self, envelope: Envelope, content: bytes) -> QueueId: ...

