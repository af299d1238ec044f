"""Dispatch a route to its delivery agent; the trivial agents ``discard`` and ``error`` live here."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from pymailsrv.delivery.base import DeliveryResult, DsnOptions, Outcome, Route, Transport


class NextHopTransport(Protocol):
    async def deliver_to(self, nexthop: str, sender: str, recipients: Sequence[str], content: bytes,
                         *, lmtp: bool = False, dsn: DsnOptions | None = None) -> list[DeliveryResult]: ...


_DSN_PREFIX = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s+(.*)$", re.S)


def error_results(text: str, recipients: Sequence[str]) -> list[DeliveryResult]:
    """``error:[d.d.d ]text``: bounce (5.x, the default) or defer (4.x) with that text."""
    m = _DSN_PREFIX.match(text)
    dsn, why = (m.group(1), m.group(2)) if m else ("5.0.0", text or "mail delivery disabled")
    outcome: Outcome = "deferred" if dsn.startswith("4") else "bounced"
    return [DeliveryResult(r, outcome, dsn, why, "none") for r in recipients]


class AgentTable:
    """Implements ``delivery.base.Agents`` over a Maildir agent and an SMTP/LMTP client."""

    def __init__(self, virtual: Transport, smtp: NextHopTransport | None = None,
                 vacation: Transport | None = None) -> None:
        self.virtual = virtual
        self.smtp = smtp
        self.vacation = vacation  # PostfixAdmin's vacation pseudo-targets (delivery.vacation)

    async def deliver(self, route: Route, sender: str, recipients: Sequence[str],
                      content: bytes, *, dsn: DsnOptions | None = None) -> list[DeliveryResult]:
        t = route.transport
        if t == "virtual":
            return await self.virtual.deliver(sender, recipients, content)
        if t in ("smtp", "lmtp"):
            if self.smtp is None:
                return [DeliveryResult(r, "deferred", "4.3.5", "no SMTP client configured") for r in recipients]
            return await self.smtp.deliver_to(route.nexthop, sender, recipients, content, lmtp=t == "lmtp",
                                              dsn=dsn)
        if t == "vacation":
            if self.vacation is None:
                return [DeliveryResult(r, "deferred", "4.3.5", "no vacation agent configured") for r in recipients]
            return await self.vacation.deliver(sender, recipients, content)
        if t == "discard":
            return [DeliveryResult(r, "sent", "2.0.0", route.nexthop or "discarded", "none") for r in recipients]
        if t == "error":
            return error_results(route.nexthop, recipients)
        return [DeliveryResult(r, "deferred", "4.3.5", f"unknown mail transport {t}") for r in recipients]
