"""The runner: calls the stages in their configured order, each only at the events it wants, and
turns a stage's failure into the stage's default action.

Implementation notes
- Per event the runner keeps the tuple of the stages that want it, built once: a stage costs
  nothing at an event it did not ask for, and an event no stage wants costs one lookup.
- A hook is awaited directly, never in a task of its own; only a stage with a time limit runs
  under ``asyncio.timeout``.
- A failure (an exception, the time limit) is logged once, naming the stage, the event and the
  client; then the stage's default action decides, as Postfix's milter_default_action does:
  accept, tempfail (451), reject (550) or quarantine (hold).
- Refusals and holds are logged as Postfix logs a milter's (``milter-reject``, ``milter-hold``)
  unless the stage logged its own decision (the restrictions and header_checks do).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from pymailsrv import meter
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.pipeline.base import ACCEPT, EVENTS, Event, Session, Stage, Transaction, Verdict
from pymailsrv.pipeline.message import Message
from pymailsrv.policy.context import client_label, format_log
from pymailsrv.types import Recipient

FailureAction = Literal["accept", "tempfail", "reject", "quarantine"]
FAILURE_ACTIONS: tuple[FailureAction, ...] = ("accept", "tempfail", "reject", "quarantine")

# Replies of a failed stage: a dependency that may heal (TemporaryFailure) and any other fault,
# as the SMTP session answers them (STYLE.md rule 3); a reject as Postfix's milter_default_action.
TEMPFAIL_LOOKUP = "451 4.3.0 Temporary lookup failure"
TEMPFAIL_FAULT = "451 4.3.5 Server configuration error"
REJECT_ON_FAILURE = "550 5.7.1 Command rejected"

# each event's restriction stage name, which the Postfix-style log lines turn into the command
_CHECK_STAGE = {"connect": "connect", "helo": "helo", "mail": "mail", "rcpt": "rcpt", "data": "data",
                "message": "end_of_data"}
_COMMAND = {"connect": "CONNECT", "helo": "HELO", "mail": "MAIL", "rcpt": "RCPT", "data": "DATA",
            "message": "END-OF-MESSAGE", "abort": "ABORT", "close": "CLOSE"}

T = TypeVar("T")
Hook = Callable[[Stage, Session, Transaction | None, Recipient | None, Message | None], Awaitable[Verdict]]


def one_line(text: str) -> str:
    """Text from a stage, for a log line: line breaks and other white space become one space."""
    return " ".join(text.split())


def _logger(session: Session) -> str:
    # Postfix logs smtpd_milters under smtpd, non_smtpd_milters under cleanup
    return "cleanup" if session.origin == "local" else "smtpd"


@dataclass(frozen=True, slots=True)
class Slot:
    """A stage in its place: its time limit per hook (0 = none) and its default action."""

    stage: Stage
    timeout: float = 0.0
    default_action: FailureAction = "tempfail"

    def failed(self, event: Event, session: Session, exc: Exception, *, decides: bool = True) -> Verdict:
        timed_out = isinstance(exc, TimeoutError)
        why = "timed out" if timed_out else one_line(f"{type(exc).__name__}: {exc}")
        action = f"; default action {self.default_action}" if decides else ""
        unexpected = not (timed_out or isinstance(exc, TemporaryFailure))
        get_logger(_logger(session)).warning(
            "pipeline stage %s failed at %s from %s: %s%s", self.stage.name, _COMMAND[event],
            client_label(session.state), why, action, exc_info=unexpected)
        if self.default_action == "accept" or not decides:
            return ACCEPT
        if self.default_action == "reject":
            return Verdict("reject", REJECT_ON_FAILURE)
        if self.default_action == "quarantine":
            return Verdict("quarantine", reason=f"stage {self.stage.name} failed")
        return Verdict("defer", TEMPFAIL_LOOKUP if isinstance(exc, TemporaryFailure) else TEMPFAIL_FAULT)


async def _bounded(call: Awaitable[T], seconds: float) -> T:
    async with asyncio.timeout(seconds):
        return await call


def _connect(st: Stage, s: Session, t: Transaction | None, r: Recipient | None,
             m: Message | None) -> Awaitable[Verdict]:
    return st.connect(s)


def _helo(st: Stage, s: Session, t: Transaction | None, r: Recipient | None,
          m: Message | None) -> Awaitable[Verdict]:
    return st.helo(s)


def _mail(st: Stage, s: Session, t: Transaction | None, r: Recipient | None,
          m: Message | None) -> Awaitable[Verdict]:
    assert t is not None
    return st.mail(s, t)


def _rcpt(st: Stage, s: Session, t: Transaction | None, r: Recipient | None,
          m: Message | None) -> Awaitable[Verdict]:
    assert t is not None and r is not None
    return st.rcpt(s, t, r)


def _data(st: Stage, s: Session, t: Transaction | None, r: Recipient | None,
          m: Message | None) -> Awaitable[Verdict]:
    assert t is not None
    return st.data(s, t)


def _message(st: Stage, s: Session, t: Transaction | None, r: Recipient | None,
             m: Message | None) -> Awaitable[Verdict]:
    assert t is not None and m is not None
    return st.message(s, t, m)


HOOKS: dict[str, Hook] = {"connect": _connect, "helo": _helo, "mail": _mail, "rcpt": _rcpt, "data": _data,
                          "message": _message}


class Pipeline:
    """The stages of one kind of mail (smtpd_pipeline, non_smtpd_pipeline), in order."""

    def __init__(self, slots: Sequence[Slot] = ()) -> None:
        self.slots = tuple(slots)
        self._by_event: dict[Event, tuple[Slot, ...]] = {
            event: tuple(slot for slot in self.slots if event in slot.stage.events) for event in EVENTS}

    def wants(self, event: Event) -> bool:
        return bool(self._by_event[event])

    async def run(self, event: Event, session: Session, txn: Transaction | None = None,
                  rcpt: Recipient | None = None, msg: Message | None = None) -> Verdict:
        """The decision at ``event`` (connect, helo, mail, rcpt, data, message): the first
        refusal or discard, else accept. ``txn`` from mail on, ``rcpt`` at rcpt, ``msg`` at
        message. A quarantine sets ``txn.hold``, a discard ``txn.discard``."""
        hook = HOOKS[event]
        for slot in self._by_event[event]:
            try:
                call = hook(slot.stage, session, txn, rcpt, msg)
                verdict = await (_bounded(call, slot.timeout) if slot.timeout else call)
            except Exception as exc:
                verdict = slot.failed(event, session, exc)
            if verdict.action == "accept":
                continue
            verdict = dataclasses.replace(verdict, stage=slot.stage.name)
            if verdict.action == "quarantine":
                self._hold(event, session, txn, verdict)
                continue
            if verdict.action == "discard":
                if txn is not None:
                    txn.discard = True
            elif not verdict.logged:  # a stage that logs its own refusals counts them too
                self._log(event, session, txn, "milter-reject", verdict.reply())
                meter.count("pymailsrv_smtpd_rejects_total", _CHECK_STAGE[event], verdict.stage, verdict.action)
            return verdict
        return ACCEPT

    async def abort(self, session: Session, txn: Transaction) -> None:
        """The transaction ended before its message was complete."""
        await self._inform("abort", session, lambda stage: stage.abort(session, txn))

    async def close(self, session: Session) -> None:
        await self._inform("close", session, lambda stage: stage.close(session))

    async def _inform(self, event: Event, session: Session, hook: Callable[[Stage], Awaitable[None]]) -> None:
        for slot in self._by_event[event]:
            try:
                call = hook(slot.stage)
                await (_bounded(call, slot.timeout) if slot.timeout else call)
            except Exception as exc:
                slot.failed(event, session, exc, decides=False)

    def _hold(self, event: Event, session: Session, txn: Transaction | None, verdict: Verdict) -> None:
        if txn is None:  # a message decision; before MAIL there is no message to hold
            get_logger(_logger(session)).warning("pipeline stage %s: quarantine at %s ignored", verdict.stage,
                                                 event)
            return
        txn.hold = True
        self._log(event, session, txn, "milter-hold", verdict.reason or "milter triggers HOLD action")

    @staticmethod
    def _log(event: Event, session: Session, txn: Transaction | None, what: str, text: str) -> None:
        state = session.state
        if txn is not None and txn.queue_id and txn.queue_id != state.queue_id:
            state = dataclasses.replace(state, queue_id=txn.queue_id)
        get_logger(_logger(session)).info("%s", format_log(what, _CHECK_STAGE[event], state, one_line(text)))


EMPTY = Pipeline()
