"""check_greylist (the built-in postgrey-like helper) on a FakeClock."""

from __future__ import annotations

from pymailsrv.clock import FakeClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.policy.dns import Resolver
from pymailsrv.policy.greylist import Greylist, client_network, normalize_sender
from pymailsrv.policy.restrictions import RestrictionEngine

from .conftest import BASE, smtp_state


def test_triplet_parts() -> None:
    assert client_network("192.0.2.77") == "192.0.2.0/24"
    assert client_network("2001:db8:1:2:3::9") == "2001:db8:1:2::/64"
    assert client_network("::ffff:10.1.2.3") == "10.1.2.0/24"
    assert normalize_sender("Bounce+12345@Lists.Example") == "bounce@lists.example"
    assert normalize_sender("") == ""


def test_greylist_lifecycle() -> None:
    clock = FakeClock()
    g = Greylist(clock, delay=300, retry_window=3600, max_age=86400, auto_whitelist=2)
    assert g.check("192.0.2.1", "a@x.example", "u@example.com").greylisted
    clock._now += 100
    assert g.check("192.0.2.9", "a+1@x.example", "U@example.com").greylisted  # same /24, too early
    clock._now += 250
    v = g.check("192.0.2.1", "a@x.example", "u@example.com")
    assert not v.greylisted and v.delayed == 350
    assert g.check("192.0.2.1", "a@x.example", "u@example.com").delayed == 0  # known: no header again
    # another recipient: new triplet; a first retry after the retry window starts over
    assert g.check("192.0.2.1", "a@x.example", "v@example.com").greylisted
    clock._now += 4000
    assert g.check("192.0.2.1", "a@x.example", "v@example.com").greylisted
    assert not g.check("192.0.2.1", "b@x.example", "w@example.com").whitelisted
    clock._now += 400
    assert not g.check("192.0.2.1", "a@x.example", "v@example.com").greylisted
    # two triplets passed: the client network is whitelisted
    assert g.check("192.0.2.1", "new@y.example", "z@example.com").whitelisted


async def test_check_greylist_restriction() -> None:
    clock = FakeClock()
    d = MemoryDirectory("/vmail")
    d.add_domain("example.com")
    d.add_mailbox("alice@example.com")
    settings = Settings({**BASE, "smtpd_recipient_restrictions": "reject_unauth_destination, check_greylist"})
    engine = RestrictionEngine(settings, d, resolver=Resolver(["127.0.0.1:9"]), clock=clock)
    state = smtp_state(recipient="alice@example.com")
    first = await engine.check("rcpt", state)
    assert first.reply() == ("450 4.2.0 <alice@example.com>: Recipient address rejected: Greylisted, please try "
                             "again later")
    await clock.advance(301)
    retry = await engine.check("rcpt", state)
    assert not retry.refused
    assert retry.effects[0][0] == "prepend"
    assert retry.effects[0][1].startswith("X-Greylist: delayed 301 seconds by pymailsrv at ")
