"""Never an open relay: every trick of open_relay_cases.txt is refused for an unauthenticated
client outside mynetworks, both with the default smtpd_relay_restrictions (454) and with
reject_unauth_destination (554); trusted clients may relay; our own recipients still pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymailsrv.policy.address import internalize, route

from .conftest import EngineFactory, smtp_state

CASES = [line for line in (Path(__file__).parent / "open_relay_cases.txt").read_text().splitlines()
         if line and not line.startswith("#")]
ACCEPTED = ["alice@example.com", "Alice@EXAMPLE.COM.", '"alice"@example.com', "alice+x@example.com",
            "anyone@backup.example", "carol@mx.example.test", "postmaster@localhost", "postmaster",
            "carol@[127.0.0.1]", "anyone@alias.example"]


def test_there_are_at_least_30_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("recipient", CASES)
async def test_relay_attempt_refused(make_engine: EngineFactory, recipient: str) -> None:
    default = make_engine()
    d = await default.check("rcpt", smtp_state(recipient=recipient))
    assert d.reply() == f"454 4.7.1 <{recipient}>: Relay access denied"
    strict = make_engine(smtpd_relay_restrictions="",
                         smtpd_recipient_restrictions="permit_sasl_authenticated, reject_unauth_destination")
    d = await strict.check("rcpt", smtp_state(recipient=recipient))
    assert d.reply() == f"554 5.7.1 <{recipient}>: Relay access denied"


@pytest.mark.parametrize("recipient", CASES)
async def test_trusted_clients_pass_the_relay_check(make_engine: EngineFactory, recipient: str) -> None:
    engine = make_engine(smtpd_reject_unlisted_recipient="no")
    for state in (smtp_state(recipient=recipient, client_address="192.168.1.20"),
                  smtp_state(recipient=recipient, sasl_username="alice@example.com")):
        assert not (await engine.check("rcpt", state)).refused


@pytest.mark.parametrize("recipient", ACCEPTED)
async def test_our_recipients_are_accepted(make_engine: EngineFactory, recipient: str) -> None:
    engine = make_engine()
    d = await engine.check("rcpt", smtp_state(recipient=recipient))
    assert not d.refused, d.reply()


async def test_route_details() -> None:
    async def local(domain: str) -> bool:
        return domain in ("mx.example.test", "localhost")

    assert internalize('"john \\"q\\" doe"@x') == 'john "q" doe@x'
    r = await route("user%remote.example@mx.example.test", local)
    assert (r.address, r.routed) == ("user@remote.example", True)
    r = await route("remote.example!user@localhost", local)
    assert (r.address, r.routed) == ("user@remote.example", True)
    r = await route("@a,@b:user@remote.example", local)
    assert (r.address, r.routed) == ("user@remote.example", True)
    r = await route("Carol@MX.example.test.", local)
    assert (r.local, r.domain, r.routed, r.local_domain) == ("Carol", "mx.example.test", False, True)
    r = await route("a@b@c@d%e!f@localhost", local)
    assert r.routed


async def test_ip_literal_of_our_listener_is_local(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_listen="192.0.2.25:25, [2001:db8::25]:25")
    for recipient in ("carol@[192.0.2.25]", "carol@[IPv6:2001:db8::25]"):
        assert not (await engine.check("rcpt", smtp_state(recipient=recipient))).refused, recipient
    assert (await engine.check("rcpt", smtp_state(recipient="carol@[192.0.2.26]"))).refused
