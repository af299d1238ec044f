"""The message pipeline seam: the events a stage sees, its decisions and the values it reads and
changes (docs/pipeline.md).

Contract of a stage
- The runner calls a stage only for the events in its ``events`` set, in the configured order of
  the stages, one event at a time per session; a stage that wants no event costs nothing.
- ``connect`` .. ``data`` and ``message`` return a Verdict. ``accept`` goes on to the next stage;
  ``reject``/``defer`` end the event with the stage's reply; ``discard`` ends it too and the
  message is accepted and dropped; ``quarantine`` holds the message and goes on. At ``rcpt`` a
  refusal refuses that recipient only.
- Changes are made in place: the sender and recipients on the Transaction (from ``mail`` on), the
  header fields and body on the Message (at ``message``). A later stage sees an earlier one's
  changes. ``abort`` (RSET, HELO, STARTTLS, a message not received whole, a lost client) and
  ``close`` (end of session) only inform.
- A stage that raises or runs out of time follows its default action (runner.Slot); a stage
  that must never be skipped (the restrictions: no open relay) handles its own failures.
- Stages keep per-session state in ``session.stage_data[their name]``, never in themselves: one
  stage object serves every session of the process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pymailsrv.policy.base import SmtpState
from pymailsrv.types import Recipient

if TYPE_CHECKING:
    from pymailsrv.pipeline.message import Message

Event = Literal["connect", "helo", "mail", "rcpt", "data", "message", "abort", "close"]
EVENTS: tuple[Event, ...] = ("connect", "helo", "mail", "rcpt", "data", "message", "abort", "close")
Action = Literal["accept", "reject", "defer", "discard", "quarantine"]
# Where a message comes from: the SMTP listener's kind, or "local" for mail the server generates.
Origin = Literal["smtpd", "submission", "smtps", "reinject", "lmtp", "local"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A stage's decision. ``smtp_reply`` is the whole reply for reject/defer ("550 5.7.1 …",
    lines joined by CRLF); ``logged`` says the stage logged the refusal itself (else the runner
    logs it, as Postfix logs a milter's); ``stage`` is filled in by the runner."""

    action: Action = "accept"
    smtp_reply: str = ""
    reason: str = ""  # why, for the log (quarantine, discard)
    logged: bool = False
    stage: str = ""

    @property
    def refused(self) -> bool:
        return self.action in ("reject", "defer")

    def reply(self) -> str:
        return self.smtp_reply


ACCEPT = Verdict()


def refusal(smtp_reply: str, *, logged: bool = False) -> Verdict:
    """A refusal whose kind follows the reply code: 5xx rejects, 4xx defers."""
    return Verdict("reject" if smtp_reply[:1] == "5" else "defer", smtp_reply, logged=logged)


class Session(Protocol):
    """What a stage may read about the session a message comes from: the SMTP session itself, or
    a LocalSession for mail the server generates. Only ``stage_data`` is the stages' to change."""

    @property
    def state(self) -> SmtpState:
        """The client, HELO, login and TLS as the restrictions see them, kept current."""
        ...

    @property
    def origin(self) -> Origin: ...

    @property
    def extended(self) -> bool:
        """The client said EHLO (not HELO)."""
        ...

    @property
    def tls_active(self) -> bool: ...

    @property
    def tls_version(self) -> str: ...

    @property
    def tls_cipher(self) -> str: ...

    @property
    def tls_bits(self) -> int: ...

    @property
    def stage_data(self) -> dict[str, Any]:
        """Per-session state of the stages, each under its own name."""
        ...


def _local_state() -> SmtpState:
    # what Postfix tells non_smtpd_milters about locally generated mail
    return SmtpState(client_address="127.0.0.1", client_name="localhost", reverse_client_name="localhost",
                     helo_name="localhost", protocol="local", service="local")


@dataclass(slots=True)
class LocalSession:
    """The session of mail the server generates (bounces, notices): a local client, no TLS."""

    state: SmtpState = field(default_factory=_local_state)
    origin: Origin = "local"
    extended: bool = False
    tls_active: bool = False
    tls_version: str = ""
    tls_cipher: str = ""
    tls_bits: int = 0
    stage_data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Transaction:
    """One message's envelope from MAIL FROM to the end of the message, as stages change it.

    ``hold``, ``discard``, ``filter``, ``redirect``, ``prepend`` and ``bcc`` are Postfix's
    access-map and header_checks actions (POSTFIX-SEMANTICS §4): REDIRECT and BCC are applied to
    the recipients when the message is queued (``final_recipients``), PREPEND headers are written
    under the trace header by the cleanup stage."""

    sender: str  # "" is the null sender <>
    recipients: list[Recipient] = field(default_factory=list)
    smtputf8: bool = False
    body_type: str = ""
    ret: str = ""
    envid: str = ""
    hold: bool = False
    discard: bool = False
    filter: str = ""  # the content filter transport:destination
    redirect: str = ""
    prepend: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    queue_id: str = ""  # known from the message event on

    def add_recipient(self, address: str) -> None:
        self.recipients.append(Recipient(address=address))

    def remove_recipient(self, address: str) -> bool:
        """Remove every recipient with this address (case-insensitive); False if there was none."""
        kept = [r for r in self.recipients if r.address.lower() != address.lower()]
        removed = len(kept) != len(self.recipients)
        self.recipients[:] = kept
        return removed

    def final_recipients(self) -> list[Recipient]:
        """The recipients to queue: REDIRECT replaces them all (the first original kept), BCC
        adds recipients that never get a delivery notice."""
        recipients = self.recipients
        if self.redirect:
            recipients = [Recipient(address=self.redirect, original=r.address, notify=r.notify, orcpt=r.orcpt)
                          for r in recipients[:1]]
        if self.bcc:
            recipients = recipients + [Recipient(address=a, notify=("NEVER",)) for a in self.bcc]
        return recipients


@runtime_checkable
class Stage(Protocol):
    """One step of the pipeline. ``name`` is what the configuration calls it; ``events`` the
    events it wants (the runner calls no other hook); ``timeout`` the time limit of one hook in
    seconds, 0 when the stage bounds its own work, None for the pipeline_stage_timeout default."""

    @property
    def name(self) -> str: ...

    @property
    def events(self) -> frozenset[Event]: ...

    @property
    def timeout(self) -> float | None: ...

    async def connect(self, session: Session) -> Verdict: ...

    async def helo(self, session: Session) -> Verdict: ...

    async def mail(self, session: Session, txn: Transaction) -> Verdict: ...

    async def rcpt(self, session: Session, txn: Transaction, rcpt: Recipient) -> Verdict:
        """``rcpt`` is not yet in ``txn.recipients``; it is added if every stage accepts."""
        ...

    async def data(self, session: Session, txn: Transaction) -> Verdict: ...

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        """The whole message is in; ``txn.queue_id`` is known."""
        ...

    async def abort(self, session: Session, txn: Transaction) -> None: ...

    async def close(self, session: Session) -> None: ...


class BaseStage:
    """Hooks that accept and do nothing, for stages to override the events they declare."""

    name = ""
    events: frozenset[Event] = frozenset()
    timeout: float | None = None

    async def connect(self, session: Session) -> Verdict:
        return ACCEPT

    async def helo(self, session: Session) -> Verdict:
        return ACCEPT

    async def mail(self, session: Session, txn: Transaction) -> Verdict:
        return ACCEPT

    async def rcpt(self, session: Session, txn: Transaction, rcpt: Recipient) -> Verdict:
        return ACCEPT

    async def data(self, session: Session, txn: Transaction) -> Verdict:
        return ACCEPT

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        return ACCEPT

    async def abort(self, session: Session, txn: Transaction) -> None:
        return None

    async def close(self, session: Session) -> None:
        return None
