"""Built-in stages that need no SMTP session details: the restrictions and the content filter.
(The stages that write what smtpd and cleanup write, ``cleanup`` and ``header_checks``, live
in smtp/stages.py.)"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.pipeline.base import ACCEPT, BaseStage, Event, Session, Transaction, Verdict
from pymailsrv.pipeline.message import Message
from pymailsrv.policy.base import Decision, Restrictions
from pymailsrv.policy.base import Stage as CheckStage
from pymailsrv.types import Recipient

log = get_logger("smtpd")
debug = logging.getLogger("pymailsrv.smtp")


class RestrictionStage(BaseStage):
    """The smtpd_*_restrictions at each SMTP event, as smtpd_check does (policy's Restrictions).

    Access-map actions that do not decide (HOLD, DISCARD, REDIRECT, FILTER, PREPEND, BCC) change
    the transaction; those found at connect and HELO apply to every transaction of the session.
    Re-injected mail (from the content filter) was checked before and is not checked again.
    A failing check defers, whatever the default action: skipping it could relay."""

    name = "restrictions"
    events: frozenset[Event] = frozenset({"connect", "helo", "mail", "rcpt", "data", "message"})
    timeout = 0.0  # lookups and policy services have their own time limits

    def __init__(self, restrictions: Restrictions) -> None:
        self.restrictions = restrictions

    # Each hook hands back the coroutine of _decide: one coroutine per event on the hot path.
    def connect(self, session: Session) -> Coroutine[Any, Any, Verdict]:
        return self._decide("connect", session, None)

    def helo(self, session: Session) -> Coroutine[Any, Any, Verdict]:
        return self._decide("helo", session, None)

    def mail(self, session: Session, txn: Transaction) -> Coroutine[Any, Any, Verdict]:
        return self._decide("mail", session, txn)

    def rcpt(self, session: Session, txn: Transaction, rcpt: Recipient) -> Coroutine[Any, Any, Verdict]:
        return self._decide("rcpt", session, txn)

    def data(self, session: Session, txn: Transaction) -> Coroutine[Any, Any, Verdict]:
        return self._decide("data", session, txn)

    def message(self, session: Session, txn: Transaction, msg: Message) -> Coroutine[Any, Any, Verdict]:
        return self._decide("end_of_data", session, txn)

    async def _decide(self, stage: CheckStage, session: Session, txn: Transaction | None) -> Verdict:
        if session.origin == "reinject":
            return ACCEPT
        try:
            decision = await self.restrictions.check(stage, session.state)
        except TemporaryFailure:
            debug.warning("temporary failure in restrictions at %s", stage, exc_info=True)
            decision = Decision("defer", 451, "4.3.0", "Temporary lookup failure")
        except Exception:
            state = session.state
            log.exception("error: restriction check at %s failed for %s[%s]", stage, state.client_name,
                          state.client_address)
            decision = Decision("defer", 451, "4.3.5", "Server configuration error")
        if decision.refused:
            # the engine logged its refusal (NOQUEUE: reject: …); a failed check was logged above
            return Verdict("reject" if decision.action == "reject" else "defer", decision.reply(), logged=True)
        if txn is None:  # connect, HELO: for every transaction of the session
            if decision.effects:
                session.stage_data.setdefault(self.name, []).extend(decision.effects)
            return ACCEPT
        if stage == "mail":
            for kind, value in session.stage_data.get(self.name, ()):
                apply_effect(txn, kind, value)
        for kind, value in decision.effects:
            apply_effect(txn, kind, value)
        return ACCEPT


def apply_effect(txn: Transaction, kind: str, value: str) -> None:
    """One access-map action that does not decide (POSTFIX-SEMANTICS §4)."""
    kind = kind.upper()
    if kind == "HOLD":
        txn.hold = True
    elif kind == "DISCARD":
        txn.discard = True
    elif kind == "REDIRECT" and value:
        txn.redirect = value
    elif kind == "FILTER" and value:
        txn.filter = value
    elif kind == "PREPEND" and value:
        txn.prepend.append(value)
    elif kind == "BCC" and value and value not in txn.bcc:
        txn.bcc.append(value)


class ContentFilterStage(BaseStage):
    """content_filter: every message is sent to this transport:destination first (Postfix's
    cleanup records it in the queue file, qmgr follows it). A FILTER action chose one already;
    mail the filter re-injects is not sent to it again."""

    name = "content_filter"
    timeout = 0.0

    def __init__(self, content_filter: str) -> None:
        self.content_filter = content_filter
        self.events = frozenset({"message"}) if content_filter else frozenset()

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        if not txn.filter and session.origin != "reinject":
            txn.filter = self.content_filter
        return ACCEPT
