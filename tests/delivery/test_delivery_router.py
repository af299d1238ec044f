from __future__ import annotations

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.delivery.agents import AgentTable, error_results
from pymailsrv.delivery.base import Route
from pymailsrv.delivery.maildir import has_delivered_to
from pymailsrv.delivery.router import UNKNOWN_USER, DirectoryRouter, parse_transport


class DictTable:
    def __init__(self, data: dict[str, str]) -> None:
        self.data = data

    async def get(self, key: str) -> str | None:
        return self.data.get(key)


@pytest.fixture
def directory() -> MemoryDirectory:
    d = MemoryDirectory("/vmail", recipient_delimiter="+")
    d.add_domain("example.com")
    d.add_domain("lmtp.example", transport="lmtp:unix:/run/dovecot/lmtp")
    d.add_domain("backup.example", backupmx=True)
    d.add_domain("relayed.example", transport="smtp:[10.0.0.5]:2525")
    d.add_mailbox("alice@example.com")
    d.add_mailbox("bob@lmtp.example")
    d.add_alias("list@example.com", ["alice@example.com", "x@far.test"])
    return d


@pytest.mark.parametrize(("value", "route"), [
    ("smtp:[mx.example.net]:2525", Route("smtp", "[mx.example.net]:2525")),
    ("relay:", Route("smtp", "d.test")),
    ("smtp", Route("smtp", "d.test")),
    ("lmtp:unix:private/dovecot-lmtp", Route("lmtp", "unix:private/dovecot-lmtp")),
    ("discard:", Route("discard", "")),
    ("error:5.7.1 go away", Route("error", "5.7.1 go away")),
    ("virtual:", Route("virtual", "")),
    ("bogus:x", Route("error", "4.3.5 unknown mail transport 'bogus'")),
])
def test_parse_transport(value, route):
    assert parse_transport(value, "d.test") == route


async def test_routes(directory):
    router = DirectoryRouter(Settings({}), directory)
    assert await router.route("alice+tag@example.com") == [("alice+tag@example.com", Route("virtual"))]
    assert await router.route("list@example.com") == [("alice@example.com", Route("virtual")),
                                                       ("x@far.test", Route("smtp", "far.test"))]
    assert await router.route("nobody@example.com") == [("nobody@example.com", Route("error", UNKNOWN_USER))]
    assert await router.route("bob@lmtp.example") == [("bob@lmtp.example", Route("lmtp", "unix:/run/dovecot/lmtp"))]
    assert await router.route("a@backup.example") == [("a@backup.example", Route("smtp", "backup.example"))]
    assert await router.route("a@relayed.example") == [("a@relayed.example", Route("smtp", "[10.0.0.5]:2525"))]
    flt = await router.route("alice@example.com", filter="smtp:[127.0.0.1]:10024")
    assert flt == [("alice@example.com", Route("smtp", "[127.0.0.1]:10024"))]


async def test_mydestination_never_goes_out(directory):
    from pymailsrv.delivery.router import UNKNOWN_LOCAL

    router = DirectoryRouter(Settings({"myhostname": "mx.example.org", "relayhost": "[smart.test]"}), directory)
    assert await router.route("root@mx.example.org") == [("root@mx.example.org", Route("error", UNKNOWN_LOCAL))]
    assert await router.route("root@localhost") == [("root@localhost", Route("error", UNKNOWN_LOCAL))]


async def test_relayhost_and_transport_maps(directory):
    tables = [DictTable({"special.test": "smtp:[10.1.1.1]", ".sub.test": "error:5.1.2 no mail here",
                         "vip@far.test": "discard:"})]
    router = DirectoryRouter(Settings({"relayhost": "[smarthost.test]:587"}), directory, tables)
    assert await router.route("x@far.test") == [("x@far.test", Route("smtp", "[smarthost.test]:587"))]
    assert await router.route("x@special.test") == [("x@special.test", Route("smtp", "[10.1.1.1]"))]
    assert await router.route("x@a.sub.test") == [("x@a.sub.test", Route("error", "5.1.2 no mail here"))]
    assert await router.route("vip@far.test") == [("vip@far.test", Route("discard", ""))]


async def test_extra_virtual_alias_maps_before_the_database(directory):
    """virtual_alias_maps tables (regexp, hash …) beside PostfixAdmin's: exact key, then
    @domain, recursive, a target equal to its key ends the recursion."""
    tables = [DictTable({"7u@example.com": "alice@example.com",
                         "team@example.com": "helper@example.com,list@example.com",
                         "helper@example.com": "helper@example.com", "@far.test": "alice@example.com"})]
    router = DirectoryRouter(Settings({}), directory, alias_tables=tables)
    assert await router.route("7u@example.com") == [("alice@example.com", Route("virtual"))]
    assert await router.route("team@example.com") == [
        ("helper@example.com", Route("error", UNKNOWN_USER)), ("alice@example.com", Route("virtual")),
        ("x@far.test", Route("smtp", "far.test"))]
    assert await router.route("whoever@far.test") == [("alice@example.com", Route("virtual"))]
    assert await router.route("list@example.com") == [("alice@example.com", Route("virtual")),
                                                       ("x@far.test", Route("smtp", "far.test"))]


async def test_error_and_discard_agents():
    [r] = error_results("5.7.1 go away", ["a@x.test"])
    assert (r.outcome, r.dsn, r.text) == ("bounced", "5.7.1", "go away")
    [r] = error_results("4.3.2 later", ["a@x.test"])
    assert (r.outcome, r.dsn) == ("deferred", "4.3.2")
    [r] = error_results("", ["a@x.test"])
    assert (r.outcome, r.dsn) == ("bounced", "5.0.0")
    table = AgentTable(virtual=None)  # type: ignore[arg-type]
    [r] = await table.deliver(Route("discard", ""), "s@x.test", ["a@x.test"], b"")
    assert r.outcome == "sent"
    [r] = await table.deliver(Route("smtp", "x.test"), "s@x.test", ["a@x.test"], b"")
    assert r.outcome == "deferred"


def test_delivered_to_loop_detection():
    assert has_delivered_to(b"DeLivered-To: A@x.test\nX: y\n\nbody", "a@x.test")
    assert has_delivered_to(b"Subject: s\ndelivered-to: <a@x.test> \n\n", "a@x.test")
    assert not has_delivered_to(b"Subject: s\n\nDelivered-To: a@x.test\n", "a@x.test")
    assert not has_delivered_to(b"Delivered-To: b@x.test\n\n", "a@x.test")


async def test_lmtp_proxy_sends_mailboxes_to_their_backend(directory):
    """lmtp_proxy on a front node: a mailbox goes over LMTP to the nexthop its backend lookup
    answers, after alias expansion; None (served here) keeps the Maildir; others are unchanged."""
    backends = {"alice@example.com": "[10.0.1.12]:24"}

    async def backend(address: str) -> str | None:
        return backends.get(address)

    router = DirectoryRouter(Settings({}), directory, mailbox_backend=backend)
    assert await router.route("list@example.com") == [("alice@example.com", Route("lmtp", "[10.0.1.12]:24")),
                                                       ("x@far.test", Route("smtp", "far.test"))]
    del backends["alice@example.com"]
    assert await router.route("alice@example.com") == [("alice@example.com", Route("virtual"))]
    assert await router.route("nobody@example.com") == [("nobody@example.com", Route("error", UNKNOWN_USER))]
