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


# The one deliberate difference: Postfix's default never looks up ".domain" keys, pymailsrv does
# (POSTFIX-SEMANTICS §4: ".domain.tld matches only subdomains"); see policy/access.py.
DIFFERENCES = {
    ("a@x.sub.example", "alice@example.com"): "554 5.7.1 <a@x.sub.example>: Sender address rejected: subdomains",
}


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
    assert (d.reply() if d.refused else "250 2.1.5 Ok") == DIFFERENCES.get((sender, rcpt), rcpt_reply)


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
    extra = ("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 <a@x.sub.example>: Sender address "
             "rejected: subdomains; from=<a@x.sub.example> to=<alice@example.com> proto=ESMTP "
             "helo=<client.example.net>")
    assert [m for m in caplog.messages if m.startswith("NOQUEUE:") and m != extra] == expected


ACTION_ROWS = [tuple(line.split("\t")) for line in
               (Path(__file__).parent / "golden" / "postfix_action_replies.txt").read_text().splitlines()]


def action_engine() -> RestrictionEngine:
    d = MemoryDirectory("/vmail", recipient_delimiter="+")
    d.add_domain("example.com")
    d.add_mailbox("alice@example.com")
    values = {"myhostname": "mx.example.test", "mydomain": "example.test",
              "mydestination": "mx.example.test, localhost", "mynetworks": "192.0.2.0/24",
              "relay_domains": "backup.example", "recipient_delimiter": "+", **postfix_golden.ACTIONS}
    del values["virtual_mailbox_maps"]
    return RestrictionEngine(Settings(values), d, resolver=Resolver(["127.0.0.1:9"]), own_addresses={"127.0.0.1"})


async def test_actions_through_end_of_data_like_postfix(caplog: pytest.LogCaptureFixture) -> None:
    """MAIL, RCPT, DATA and end-of-data replies and the smtpd log lines of postfix_action_*.txt."""
    assert [row[:3] for row in ACTION_ROWS] == [tuple(s) for s in postfix_golden.ACTION_SCENARIOS]
    caplog.set_level(logging.INFO, logger="pymailsrv.smtpd")
    e = action_engine()
    ok = {"mail": "250 2.1.0 Ok", "rcpt": "250 2.1.5 Ok", "data": "354 End data with <CR><LF>.<CR><LF>",
          "end_of_data": "250 2.0.0 Ok: queued as QUEUEID"}
    for helo, sender, rcpt, *expected in ACTION_ROWS:
        state = smtp_state(client_address="127.0.0.1", client_name="unknown", helo_name=helo, sender=sender)
        got: list[str] = []
        for stage in ("mail", "rcpt", "data", "end_of_data"):
            if got and not got[-1].startswith(("250", "354")):
                got.append("-")
                continue
            if stage == "rcpt":
                state.recipient = rcpt
            if stage == "data":
                state.queue_id, state.recipient_count = "QUEUEID", 1
            d = await e.check(stage, state)  # type: ignore[arg-type]
            got.append(d.reply() if d.refused else ok[stage])
        assert got == expected, sender
    expected_log = (Path(__file__).parent / "golden" / "postfix_action_log.txt").read_text().splitlines()
    assert [m for m in caplog.messages if ": " in m and m.split(":")[0] in ("NOQUEUE", "QUEUEID")] == expected_log


CLIENT_ROWS = [tuple(line.split("\t")) for line in
               (Path(__file__).parent / "golden" / "postfix_client_replies.txt").read_text().splitlines()]


async def test_client_restrictions_like_postfix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """check_client_access (address and prefixes), cidr with negation, permit_mynetworks,
    reject_unknown_client_hostname: the replies and log lines of postfix_client_*.txt."""
    assert [row[:2] for row in CLIENT_ROWS] == [tuple(s) for s in postfix_golden.CLIENT_SCENARIOS]
    cidr = tmp_path / "c.cidr"
    cidr.write_text(postfix_golden.CIDR)
    d = MemoryDirectory("/vmail", recipient_delimiter="+")
    d.add_domain("example.com")
    d.add_mailbox("alice@example.com")
    values = {"myhostname": "mx.example.test", "mydomain": "example.test",
              "mydestination": "mx.example.test, localhost", "relay_domains": "backup.example",
              **{k: v.replace("CIDR_FILE", str(cidr)) for k, v in postfix_golden.CLIENTS.items()}}
    del values["virtual_mailbox_maps"]
    e = RestrictionEngine(Settings(values), d, resolver=Resolver(["127.0.0.1:9"]), own_addresses={"127.0.0.1"})
    caplog.set_level(logging.INFO, logger="pymailsrv.smtpd")
    for source, rcpt, expected in CLIENT_ROWS:
        state = smtp_state(client_address=source, client_name="unknown", helo_name="client.example.net",
                           sender="a@good.example", recipient=rcpt)
        decision = await e.check("rcpt", state)
        assert (decision.reply() if decision.refused else "250 2.1.5 Ok") == expected, source
    expected_log = (Path(__file__).parent / "golden" / "postfix_client_log.txt").read_text().splitlines()
    assert [m for m in caplog.messages if m.startswith("NOQUEUE:")] == expected_log
