"""The built-in stages below the socket: which content filter a message gets, and how the
restrictions' access-map actions reach the transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pymailsrv.pipeline.base import LocalSession, Origin, Transaction
from pymailsrv.pipeline.message import Message
from pymailsrv.pipeline.stages import ContentFilterStage, RestrictionStage
from pymailsrv.policy.base import Decision, SmtpState, Stage
from pymailsrv.types import Recipient

FILTER = "smtp:[127.0.0.1]:10024"


@pytest.mark.parametrize(("origin", "chosen", "expected"), [
    ("smtpd", "", FILTER),  # content_filter for every message
    ("local", "", FILTER),  # bounces too, as before the pipeline
    ("smtpd", "smtp:[127.0.0.1]:10026", "smtp:[127.0.0.1]:10026"),  # a FILTER action chose one
    ("reinject", "", ""),  # the filter's own output is not filtered again
])
async def test_content_filter_selection(origin: Origin, chosen: str, expected: str) -> None:
    txn = Transaction(sender="s@example.test", filter=chosen)
    await ContentFilterStage(FILTER).message(LocalSession(origin=origin), txn, Message(b"\r\n"))
    assert txn.filter == expected


def test_content_filter_unset_wants_no_event() -> None:
    assert ContentFilterStage("").events == frozenset()


@dataclass
class Answers:
    """Restrictions that answer from a table: stage -> Decision; records the stages asked."""

    decisions: dict[str, Decision] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def check(self, stage: Stage, state: SmtpState) -> Decision:
        self.asked.append(stage)
        if stage == "data":
            raise RuntimeError("lookup table exploded")
        return self.decisions.get(stage, Decision("dunno"))


async def test_restriction_effects_reach_every_transaction_of_the_session() -> None:
    engine = Answers({"connect": Decision("dunno", effects=(("hold", "client"),)),
                      "rcpt": Decision("dunno", effects=(("prepend", "X-Rcpt: yes"), ("bcc", "audit@x.test"))),
                      "end_of_data": Decision("reject", 550, "5.7.1", "No")})
    stage, session = RestrictionStage(engine), LocalSession(origin="smtpd")
    assert (await stage.connect(session)).action == "accept"
    for sender in ("a@x.test", "b@x.test"):
        txn = Transaction(sender=sender)
        await stage.mail(session, txn)
        await stage.rcpt(session, txn, Recipient("r@x.test"))
        assert txn.hold and txn.prepend == ["X-Rcpt: yes"] and txn.bcc == ["audit@x.test"]
    refused = await stage.message(session, txn, Message(b"\r\n"))
    assert (refused.action, refused.reply(), refused.logged) == ("reject", "550 5.7.1 No", True)


async def test_failing_restriction_check_defers_whatever_the_default_action() -> None:
    stage = RestrictionStage(Answers())
    verdict = await stage.data(LocalSession(origin="smtpd"), Transaction(sender=""))
    assert (verdict.action, verdict.reply()) == ("defer", "451 4.3.5 Server configuration error")


async def test_reinjected_mail_is_not_checked_again() -> None:
    engine = Answers()
    stage, session = RestrictionStage(engine), LocalSession(origin="reinject")
    await stage.connect(session)
    await stage.rcpt(session, Transaction(sender=""), Recipient("r@x.test"))
    assert engine.asked == []
