"""HELO, sender and recipient restrictions give Postfix's exact replies.

golden/postfix_restriction_replies.txt was recorded from Postfix 3.7 by postfix_golden.py
(``restrictions`` mode: helo, sender, recipient, MAIL reply, RCPT reply per line) with the
restrictions of postfix_golden.RESTRICTIONS; the engine is configured the same way here."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.policy.dns import Resolver
from pymailsrv.policy.restrictions import RestrictionEngine

from . import postfix_golden
from .conftest import smtp_state

LINES = (Path(__file__).parent / "golden" / "postfix_restriction_replies.txt").read_text().splitlines()
ROWS = [tuple(line.split("\t")) for line in LINES]


def engine() -> RestrictionEngine:
    d = MemoryDirectory("/vmail", recipient_delimiter="+")
    d.add_domain("example.com")
    for user in ("alice", "carol", "bob", "rr"):
        d.add_mailbox(f"{user}@example.com")
    values = {"myhostname": "mx.example.test", "mydomain": "example.test",
              "mydestination": "mx.example.test, localhost", "mynetworks": "192.0.2.0/24",
              "relay_domains": "backup.example", "recipient_delimiter": "+", **postfix_golden.RESTRICTIONS}
    del values["virtual_mailbox_maps"]  # the Directory holds the same mailboxes
    return RestrictionEngine(Settings(values), d, resolver=Resolver(["127.0.0.1:9"]), own_addresses={"127.0.0.1"})


def test_every_scenario_recorded() -> None:
    assert [row[:3] for row in ROWS] == [tuple(s) for s in postfix_golden.SCENARIOS]


@pytest.mark.parametrize(("helo", "sender", "rcpt", "mail_reply", "rcpt_reply"), ROWS)
async def test_same_replies_as_postfix(helo: str, sender: str, rcpt: str, mail_reply: str, rcpt_reply: str) -> None:
    e = engine()
    state = smtp_state(client_address="127.0.0.1", client_name="unknown", helo_name=helo, sender=sender)
    mail = await e.check("mail", state)
    assert (mail.reply() if mail.refused else "250 2.1.0 Ok") == mail_reply
    if mail.refused:
        return
    state.recipient = rcpt
    d = await e.check("rcpt", state)
    assert (d.reply() if d.refused else "250 2.1.5 Ok") == rcpt_reply


async def test_same_log_lines_as_postfix(caplog: pytest.LogCaptureFixture) -> None:
    """The "NOQUEUE: reject: RCPT from …" lines Postfix wrote for the same scenarios."""
    expected = (Path(__file__).parent / "golden" / "postfix_restriction_log.txt").read_text().splitlines()
    caplog.set_level(logging.INFO, logger="pymailsrv.smtpd")
    e = engine()
    for helo, sender, rcpt, _, _ in ROWS:
        state = smtp_state(client_address="127.0.0.1", client_name="unknown", helo_name=helo, sender=sender)
        if not (await e.check("mail", state)).refused:
            state.recipient = rcpt
            await e.check("rcpt", state)
    assert [m for m in caplog.messages if m.startswith("NOQUEUE:")] == expected
