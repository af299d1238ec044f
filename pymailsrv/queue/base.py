"""The queue seam: what the SMTP side hands over after DATA (interfaces and the envelope type)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pymailsrv.types import QueueId
from pymailsrv.types import Recipient as Recipient  # the envelope's recipients, re-exported


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

    def new_queue_id(self) -> QueueId:
        """A fresh queue id, reserved before ``submit`` so that the message's trace header and the
        ``QUEUEID: client=…`` / ``message-id=…`` lines can name it first, as in Postfix."""
        ...

    async def submit(self, envelope: Envelope, content: bytes, *, queue_id: QueueId | None = None) -> QueueId:
        """Take the message under ``queue_id`` (one from ``new_queue_id``) or a fresh id; returns
        the id. Raises TemporaryFailure (or OSError) when it cannot be made durable."""
        ...
