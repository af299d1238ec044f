"""The transport seam: the queue manager hands a message and recipients to a delivery agent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Outcome = Literal["sent", "deferred", "bounced"]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    recipient: str
    outcome: Outcome
    dsn: str  # enhanced status code, "2.0.0", "4.4.1", "5.1.1"
    text: str  # for the log's status=… (…) and the DSN's Diagnostic-Code
    relay: str = "none"  # Postfix relay= field: "virtual", "mx.example.com[192.0.2.1]:25"


class Transport(Protocol):
    async def deliver(self, sender: str, recipients: Sequence[str], content: bytes) -> list[DeliveryResult]:
        """Deliver one message to some recipients; one result per recipient, in order. Must not
        raise for per-recipient failures; raises only for bugs."""
        ...
