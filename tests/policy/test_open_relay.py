"""Never an open relay, and the same answers as Postfix.

golden/postfix_rcpt_replies.txt holds Postfix 3.7's reply to each RCPT TO form of
open_relay_cases.txt (and some of our own recipients), recorded by postfix_golden.py with the
configuration described there. The engine, configured the same way, must give the same reply line
for every one of them (Postfix's "250 2.1.5 Ok" = not refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.policy.address import internalize, route
from pymailsrv.policy.dns import Resolver
from pymailsrv.policy.restrictions import RestrictionEngine

from .conftest import EngineFactory, smtp_state

HERE = Path(__file__).parent
CASES = [line for line in (HERE / "open_relay_cases.txt").read_text().splitlines()
         if line and not line.startswith("#")]
GOLDEN = dict(line.split("\t", 1) for line in (HERE / "golden" / "postfix_rcpt_replies.txt").read_text().splitlines())


def postfix_like(**params: str) -> RestrictionEngine:
    """The configuration postfix_golden.py documents."""
    d = MemoryDirectory("/vmail", recipient_delimiter="+")
    d.add_domain("example.com")
    for address in ("alice@example.com", "carol@example.com", "carol@mx.example.test"):
        d.add_mailbox(address)
    values = {"myhostname": "mx.example.test", "mydomain": "example.test",
              "mydestination": "mx.example.test, localhost", "mynetworks": "192.0.2.0/24",
              "relay_domains": "backup.example", "recipient_delimiter": "+", **params}
    return RestrictionEngine(Settings(values), d, resolver=Resolver(["127.0.0.1:9"]), own_addresses={"127.0.0.1"})


def client(recipient: str) -> dict[str, str]:
    return {"client_address": "127.0.0.1", "client_name": "localhost", "recipient": recipient}


def test_cases_are_recorded_and_at_least_30() -> None:
    assert len(CASES) >= 30
    assert set(CASES) <= set(GOLDEN)


@pytest.mark.parametrize(("recipient", "expected"), sorted(GOLDEN.items()))
async def test_same_reply_as_postfix(recipient: str, expected: str) -> None:
    engine = postfix_like()
    d = await engine.check("rcpt", smtp_state(**client(recipient)))
    assert (d.reply() if d.refused else "250 2.1.5 Ok") == expected


@pytest.mark.parametrize("recipient", CASES)
async def test_relay_attempt_refused(recipient: str) -> None:
    expected = GOLDEN[recipient]
    assert expected.startswith(("454 4.7.1", "501 5.1.3"))
    strict = postfix_like(smtpd_relay_restrictions="",
                          smtpd_recipient_restrictions="permit_sasl_authenticated, reject_unauth_destination")
    d = await strict.check("rcpt", smtp_state(**client(recipient)))
    assert d.reply() == expected.replace("454 4.7.1", "554 5.7.1")


@pytest.mark.parametrize("recipient", CASES)
async def test_trusted_clients_pass_the_relay_check(make_engine: EngineFactory, recipient: str) -> None:
    engine = make_engine(smtpd_reject_unlisted_recipient="no")
    for state in (smtp_state(recipient=recipient, client_address="192.168.1.20"),
                  smtp_state(recipient=recipient, sasl_username="alice@example.com")):
        d = await engine.check("rcpt", state)
        assert not d.refused or d.code == 501, d.reply()


async def test_ip_literal_of_our_listener_is_local(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_listen="192.0.2.25:25, [2001:db8::25]:25")
    for recipient in ("carol@[192.0.2.25]", "carol@[IPv6:2001:db8::25]"):
        assert not (await engine.check("rcpt", smtp_state(recipient=recipient))).refused, recipient
    assert (await engine.check("rcpt", smtp_state(recipient="carol@[192.0.2.26]"))).refused


async def test_route_details() -> None:
    async def local(domain: str) -> bool:
        return domain in ("mx.example.test", "localhost")

    assert internalize('"john \\"q\\" doe"@x') == 'john "q" doe@x'
    r = await route("user%remote.example@mx.example.test", local)
    assert (r.address, r.routed) == ("user@remote.example", True)
    r = await route("remote.example!user@localhost", local)
    assert (r.address, r.routed) == ("user@remote.example", True)
    r = await route("@a,@b:user@remote.example", local)
    assert (r.address, r.routed) == ("user@remote.example", False)  # the route is ignored, as RFC 5321 says
    r = await route("Carol@MX.example.test.", local)
    assert (r.local, r.domain, r.routed, r.local_domain) == ("Carol", "mx.example.test", False, True)
    r = await route("a@b@c@d%e!f@localhost", local)
    assert r.routed
