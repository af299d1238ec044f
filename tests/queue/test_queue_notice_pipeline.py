"""Notices the queue manager generates pass through its pipeline (non_smtpd_pipeline): a stage that
fails with the default action tempfail keeps the failure notice pending, and the message stays
queued until the notice goes out; a hold puts the notice on hold."""

from __future__ import annotations

import logging

from qfakes import MSG, envelope, maildir_messages

from pymailsrv.pipeline.base import ACCEPT, BaseStage, Event, Session, Transaction, Verdict
from pymailsrv.pipeline.message import Message
from pymailsrv.pipeline.runner import Pipeline, Slot


class FailsFirst(BaseStage):
    """Raises on its first ``failures`` notices, then passes them."""

    name = "flaky"
    events: frozenset[Event] = frozenset({"message"})

    def __init__(self, failures: int) -> None:
        self.failures = failures

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("milter down")
        return ACCEPT


async def test_deferred_failure_notice_is_retried_with_the_message(harness, directory, clock, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    directory.add_mailbox("s@example.test", str(tmp_path / "vmail"))
    pipeline = Pipeline([Slot(FailsFirst(1))])
    async with harness(pipeline=pipeline, minimal_backoff_time="300s") as h:
        qid = await h.manager.submit(envelope("s@example.test", "nobody@example.test"), MSG)
        await h.manager.wait_idle()
        assert maildir_messages(directory.mailboxes["s@example.test"]) == []
        assert h.manager.entries[qid].state == "deferred"  # kept for its notice
        assert f"{qid}: sender non-delivery notification deferred by flaky: 451 4.3.5 Server configuration " \
               "error" in caplog.text
        await clock.advance(301)
        await h.manager.wait_idle()
        assert qid not in h.manager.entries
    [notice] = maildir_messages(directory.mailboxes["s@example.test"])
    assert b"Subject: Undelivered Mail Returned to Sender" in notice
    assert caplog.text.count("to=<nobody@example.test>") == 1  # the recipient was not tried again


async def test_quarantined_notice_waits_in_hold(harness, directory, tmp_path):
    class Hold(BaseStage):
        name = "hold"
        events: frozenset[Event] = frozenset({"message"})

        async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
            return Verdict("quarantine", reason="review bounces")

    directory.add_mailbox("s@example.test", str(tmp_path / "vmail"))
    async with harness(pipeline=Pipeline([Slot(Hold())])) as h:
        await h.manager.submit(envelope("s@example.test", "nobody@example.test"), MSG)
        await h.manager.wait_idle()
        [held] = [qf for qf in h.manager.entries.values() if qf.state == "hold"]
        assert held.envelope.sender == "" and held.envelope.attributes["notice"] == "failure"
    assert maildir_messages(directory.mailboxes["s@example.test"]) == []
