"""Built-in stages that need no SMTP session details: the restrictions and the content filter.
(The stages that write what smtpd and cleanup write, ``cleanup`` and ``header_checks``, live
in smtp/stages.py.)"""

from __future__ import annotations

import logging

from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.pipeline.base import ACCEPT, BaseStage, Event, Session, Transaction, Verdict
from pymailsrv.pipeline.message import Message
from pymailsrv.policy.base import Decision, Restrictions
from pymailsrv.policy.base import Stage as CheckStage
from pymailsrv.types import Recipient

log = get_logger("smtpd")
debug = logging.getLogger("pymailsrv.smtp")

_PERMIT = Decision("permit")


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

    async def connect(self, session: Session) -> Verdict:
        return self._carry(session, await self._check("connect", session))

    async def helo(self, session: Session) -> Verdict:
        return self._carry(session, await self._check("helo", session))

    async def mail(self, session: Session, txn: Transaction) -> Verdict:
        decision = await self._check("mail", session)
        if not decision.refused:
            for kind, value in session.stage_data.get(self.name, ()):
                apply_effect(txn, kind, value)
        return self._apply(decision, txn)

    async def rcpt(self, session: Session, txn: Transaction, rcpt: Recipient) -> Verdict:
        return self._apply(await self._check("rcpt", session), txn)

    async def data(self, session: Session, txn: Transaction) -> Verdict:
        return self._apply(await self._check("data", session), txn)

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        return self._apply(await self._check("end_of_data", session), txn)

    async def _check(self, stage: CheckStage, session: Session) -> Decision:
        if session.origin == "reinject":
            return _PERMIT
        try:
            return await self.restrictions.check(stage, session.state)
        except TemporaryFailure:
            debug.warning("temporary failure in restrictions at %s", stage, exc_info=True)
            return Decision("defer", 451, "4.3.0", "Temporary lookup failure")
        except Exception:
            state = session.state
            log.exception("error: restriction check at %s failed for %s[%s]", stage, state.client_name,
                          state.client_address)
            return Decision("defer", 451, "4.3.5", "Server configuration error")

    def _carry(self, session: Session, decision: Decision) -> Verdict:
        """Effects found before MAIL wait for the session's transactions."""
        if decision.effects and not decision.refused:
            session.stage_data.setdefault(self.name, []).extend(decision.effects)
        return _verdict(decision)

    @staticmethod
    def _apply(decision: Decision, txn: Transaction) -> Verdict:
        if not decision.refused:
            for kind, value in decision.effects:
                apply_effect(txn, kind, value)
        return _verdict(decision)


def _verdict(decision: Decision) -> Verdict:
    # the engine logged its refusal (NOQUEUE: reject: …); a failed check was logged above
    if not decision.refused:
        return ACCEPT
    return Verdict("reject" if decision.action == "reject" else "defer", decision.reply(), logged=True)


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
