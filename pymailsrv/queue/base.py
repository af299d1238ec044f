"""The queue seams: what the SMTP side hands over after DATA (Queue, the envelope type) and what the
queue manager keeps it in (Spool, the queue file's values)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    hold: bool = False  # a HOLD action or a stage's quarantine
    filter: str = ""  # the content filter transport:destination the pipeline chose (or none)
    skip_filter: bool = False  # mail re-injected by the content filter
    smtputf8: bool = False
    body_type: str = ""  # 7BIT | 8BITMIME | BINARYMIME
    attributes: dict[str, str] = field(default_factory=dict)


STATES = ("active", "deferred", "hold")  # where a queued message can be


class CorruptFile(Exception):
    """A spool file that does not parse."""


@dataclass(slots=True)
class FinalStatus:
    """A final result for one (envelope recipient, final address) pair."""

    status: str  # sent | bounced
    dsn: str
    text: str
    relay: str = "none"


@dataclass(slots=True)
class QueueFile:
    """What a spool file says, minus the content (read on demand)."""

    queue_id: QueueId
    state: str
    envelope: Envelope
    size: int
    content_offset: int
    attempts: int = 0
    next_attempt: float = 0.0
    warned: bool = False
    done: dict[tuple[int, str], FinalStatus] = field(default_factory=dict)
    last: dict[int, tuple[str, str]] = field(default_factory=dict)  # rcpt index -> (dsn, reason)
    notified: set[tuple[int, str]] = field(default_factory=set)  # bounced keys whose notice is queued

    def apply(self, record: dict[str, Any]) -> None:
        kind = record.get("k")
        if kind == "r":
            key = (int(record["i"]), str(record["to"]))
            status = str(record["s"])
            if status in ("sent", "bounced"):
                self.done[key] = FinalStatus(status, str(record.get("d", "")), str(record.get("t", "")),
                                      str(record.get("relay", "none")))
            else:
                self.last[key[0]] = (str(record.get("d", "")), str(record.get("t", "")))
        elif kind == "a":
            self.attempts = int(record.get("n", self.attempts))
            self.next_attempt = float(record.get("next", self.next_attempt))
        elif kind == "n":
            self.notified.update((int(i), str(to)) for i, to in record.get("keys", ()))
        elif kind == "w":
            self.warned = True
        elif kind == "reset":
            self.attempts = 0
            self.next_attempt = 0.0


class Spool(Protocol):
    """The durable store of queued messages, the queue manager's only way to the disk: one file per
    message in a state (STATES), holding the envelope, the content and status records appended
    as deliveries finish (the record kinds ``QueueFile.apply`` reads). Blocking calls are made
    from a thread by the caller where they may wait on the disk."""

    def new_id(self) -> QueueId:
        """A fresh queue id: unique (also across the processes sharing the spool) and sortable."""
        ...

    def ids(self, state: str) -> list[str]:
        """The queue ids in ``state``; raises OSError when the state cannot be listed."""
        ...

    def exists(self, queue_id: str, state: str) -> bool: ...

    def locate(self, queue_id: str) -> str | None:
        """The state a message is in, or None."""
        ...

    async def put(self, envelope: Envelope, content: bytes, *, state: str = "active",
                  records: list[dict[str, Any]] | None = None, queue_id: QueueId | None = None) -> QueueId:
        """Store a message durably: returns only after the file and its directory entry are
        fsynced (the caller then answers 250). Raises TemporaryFailure on disk errors."""
        ...

    async def append(self, queue_id: str, state: str, records: list[dict[str, Any]]) -> None:
        """Append status records durably; a record is there whole or not at all after a crash."""
        ...

    async def move(self, queue_id: str, src: str, dst: str, *, durable: bool = False) -> None:
        """Move a message to another state (NotFound if it is gone); ``durable``: survives a crash."""
        ...

    def remove(self, queue_id: str, state: str) -> None:
        """Remove a message; one already gone is no error."""
        ...

    def read_content(self, qf: QueueFile) -> bytes:
        """The content of a message; raises OSError, CorruptFile."""
        ...

    def load(self, queue_id: str, state: str) -> QueueFile:
        """One message without its content; raises FileNotFoundError, CorruptFile."""
        ...

    def scan(self, states: tuple[str, ...] = STATES, *, quarantine: bool = True) -> Iterator[QueueFile]:
        """Every readable message, oldest first per state; ``quarantine``: set corrupt ones aside."""
        ...

    def quarantine(self, queue_id: str, state: str, why: str) -> None:
        """Set a corrupt message aside (never deleted), with a log line."""
        ...

    def clean_incoming(self) -> int:
        """At start-up: remove what was never acknowledged (a crash during put); how many."""
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
