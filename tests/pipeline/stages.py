"""Stages the pipeline tests put into the configuration as ``python:tests.pipeline.stages:NAME``.
``TagSubject`` is the example of docs/pipeline.md."""

from __future__ import annotations

import asyncio
import logging

from pymailsrv.config.settings import Settings
from pymailsrv.pipeline.base import ACCEPT, BaseStage, Event, Session, Transaction, Verdict, refusal
from pymailsrv.pipeline.message import Message
from pymailsrv.types import Recipient

log = logging.getLogger("pymailsrv.tests.stages")


class TagSubject(BaseStage):
    """Marks the subject of every message that did not come from a logged-in user:
    ``Subject: [ext] …``, and says so in an ``X-Tagged:`` header."""

    name = "tag_subject"
    events: frozenset[Event] = frozenset({"message"})

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        if session.state.sasl_username:
            return ACCEPT
        subject = msg.get("Subject")
        msg.change_header("Subject", f"[ext] {subject}" if subject else "[ext]")
        msg.add_header("X-Tagged", f"by {session.origin} stage")
        return ACCEPT


def tag_subject(settings: Settings) -> TagSubject:
    return TagSubject()


class RejectForbidden(BaseStage):
    """Refuses a sender whose local part is "spammer" at MAIL, a message whose subject says
    "forbidden" at its end, and every null-sender message (bounces)."""

    name = "reject_forbidden"
    events: frozenset[Event] = frozenset({"mail", "message"})

    async def mail(self, session: Session, txn: Transaction) -> Verdict:
        if txn.sender.startswith("spammer@"):
            return refusal(f"553 5.7.1 <{txn.sender}>: Sender refused by a stage")
        return ACCEPT

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        if not txn.sender:
            return refusal("550 5.7.1 No bounces here")
        if "forbidden" in (msg.get("Subject") or "").lower():
            return refusal("550 5.7.1 Forbidden subject")
        return ACCEPT


def reject_forbidden(settings: Settings) -> RejectForbidden:
    return RejectForbidden()


class Explode(BaseStage):
    """Fails at the end of every message."""

    name = "explode"
    events: frozenset[Event] = frozenset({"message"})

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        raise RuntimeError("the stage broke")


def explode(settings: Settings) -> Explode:
    return Explode()


class Sleepy(BaseStage):
    """Never answers at RCPT: only its time limit ends the wait."""

    name = "sleepy"
    events: frozenset[Event] = frozenset({"rcpt"})

    async def rcpt(self, session: Session, txn: Transaction, rcpt: Recipient) -> Verdict:
        await asyncio.sleep(3600)
        return ACCEPT


def sleepy(settings: Settings) -> Sleepy:
    return Sleepy()


class Recorder(BaseStage):
    """Logs every event it sees (``recorder: EVENT sender``), to show which events arrive."""

    name = "recorder"
    events: frozenset[Event] = frozenset({"connect", "helo", "mail", "rcpt", "data", "message", "abort",
                                          "close"})

    async def connect(self, session: Session) -> Verdict:
        log.info("recorder: connect %s", session.origin)
        return ACCEPT

    async def helo(self, session: Session) -> Verdict:
        log.info("recorder: helo %s", session.state.helo_name)
        return ACCEPT

    async def mail(self, session: Session, txn: Transaction) -> Verdict:
        log.info("recorder: mail %s", txn.sender)
        return ACCEPT

    async def rcpt(self, session: Session, txn: Transaction, rcpt: Recipient) -> Verdict:
        log.info("recorder: rcpt %s", rcpt.address)
        return ACCEPT

    async def data(self, session: Session, txn: Transaction) -> Verdict:
        log.info("recorder: data %s", txn.sender)
        return ACCEPT

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        log.info("recorder: message %s %s", txn.sender, txn.queue_id)
        return ACCEPT

    async def abort(self, session: Session, txn: Transaction) -> None:
        log.info("recorder: abort %s", txn.sender)

    async def close(self, session: Session) -> None:
        log.info("recorder: close")


def recorder(settings: Settings) -> Recorder:
    return Recorder()
