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


# --- additions by the queue engineer (additive) ----------------------------------------------
@dataclass(frozen=True, slots=True)
class Route:
    """Where one final recipient goes: Postfix's ``transport:nexthop``.

    transport: ``virtual`` (Maildir), ``smtp`` (``relay`` is an alias), ``lmtp``, ``discard`` or
    ``error``; nexthop: ``[host]:port`` (no MX lookup), ``domain`` (MX lookup) or, for ``error``,
    the text (optionally starting with an enhanced status code)."""

    transport: str
    nexthop: str = ""

    def __str__(self) -> str:
        return f"{self.transport}:{self.nexthop}"


class Router(Protocol):
    async def route(self, address: str, *, skip_filter: bool = False, filter: str = "") -> list[tuple[str, Route]]:
        """The final recipients of one envelope recipient and their routes (alias expansion,
        virtual mailbox, relay, transport_maps, content_filter). Raises TemporaryFailure when a
        lookup fails in a way that may heal."""
        ...


@dataclass(frozen=True, slots=True)
class DsnOptions:
    """RFC 3461 parameters to pass on to a next hop that offers DSN; ``notify`` and ``orcpt``
    are aligned with the recipients of the call."""

    ret: str = ""
    envid: str = ""
    notify: tuple[tuple[str, ...], ...] = ()
    orcpt: tuple[str, ...] = ()


class Agents(Protocol):
    async def deliver(
        self, route: Route, sender: str, recipients: Sequence[str], content: bytes,
        *, dsn: DsnOptions | None = None,
    ) -> list[DeliveryResult]:
        """Hand the recipients of one route to the agent that serves its transport; same contract
        as ``Transport.deliver``. ``dsn`` only matters to the SMTP/LMTP client."""
        ...
