"""Failed-login throttling on a FakeClock: the penalty per address, one guess at a time from a
failing address, the guard of a login under distributed attack, and what none of them may do:
lock the owner out of an address that has logged in before or has not failed."""

from __future__ import annotations

import pytest

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.auth.throttle import Throttle, client_key
from pymailsrv.clock import FakeClock
from pymailsrv.net.networks import parse_network

ALICE = "alice@example.com"


def make(clock: FakeClock, **kw: float) -> Throttle:
    params: dict[str, float] = {"delay": 2.0, "limit": 5, "window": 300.0, "max_delay": 15.0}
    params.update(kw)
    return Throttle(clock, delay=params["delay"], limit=int(params["limit"]), window=params["window"],
                    max_delay=params["max_delay"], max_entries=int(params.get("max_entries", 10_000)))


def fail(t: Throttle, ip: str, login: str = ALICE) -> float:
    """One whole failed login: admitted, then answered as failed; returns the wait it was given."""
    wait = t.attempt(ip, login)
    t.failed(ip, login)
    return wait


async def test_penalty_grows_per_failure_up_to_15_seconds() -> None:
    t = make(FakeClock(), limit=100)
    assert [fail(t, "192.0.2.1", f"u{i}@example.com") for i in range(7)] == [0.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    assert t.attempt("192.0.2.2", "u1@example.com") == 0.0  # another address is not slowed


async def test_a_success_from_the_address_clears_its_penalty() -> None:
    t = make(FakeClock(), limit=100)
    for _ in range(3):
        fail(t, "192.0.2.1", "bob@example.com")
    assert t.attempt("192.0.2.1", ALICE) == 8.0
    t.success("192.0.2.1", ALICE)
    assert fail(t, "192.0.2.1", "bob@example.com") == 0.0
    assert t.attempt("192.0.2.1", "bob@example.com") == 2.0


async def test_failures_age_out_of_the_window() -> None:
    clock = FakeClock()
    t = make(clock, limit=100)
    for _ in range(4):
        fail(t, "192.0.2.1")
        await clock.advance(10)
    await clock.advance(300 - 40 + 1)  # the first failure has aged out
    assert t.attempt("192.0.2.1", ALICE) == 8.0
    t.cancel("192.0.2.1", ALICE)
    await clock.advance(31)
    assert t.attempt("192.0.2.1", ALICE) == 0.0
    assert t.tracked()[0] == 0


async def test_a_failing_address_unknown_good_gets_one_guess_at_a_time() -> None:
    t = make(FakeClock(), limit=100)
    fail(t, "192.0.2.1", "x@example.com")
    assert t.attempt("192.0.2.1", "a@example.com") == 2.0
    with pytest.raises(AuthUnavailable, match="being checked"):  # parallel guesses gain nothing
        t.attempt("192.0.2.1", "b@example.com")
    t.failed("192.0.2.1", "a@example.com")
    assert t.attempt("192.0.2.1", "b@example.com") == 4.0  # its turn, with the penalty


async def test_addresses_that_have_not_failed_or_are_known_good_are_not_limited() -> None:
    t = make(FakeClock(), limit=3)
    # first contact, or a whole office reconnecting after a restart: all at once, no wait
    assert [t.attempt("192.0.2.1", f"u{i % 5}@example.com") for i in range(50)] == [0.0] * 50
    for i in range(50):
        t.success("192.0.2.1", f"u{i % 5}@example.com")
    for _ in range(4):  # someone in the office keeps a wrong password
        fail(t, "192.0.2.1", "x@example.com")
    waits = [t.attempt("192.0.2.1", f"u{i % 5}@example.com") for i in range(20)]
    assert waits == [15.0] * 20  # slowed, never refused: the address has logged in before


async def test_distributed_guessing_of_one_login() -> None:
    clock = FakeClock()
    t = make(clock)
    t.attempt("192.0.2.50", ALICE)
    t.success("192.0.2.50", ALICE)  # alice's phone
    await clock.advance(3600)
    for i in range(5):  # a botnet, one guess per address
        assert fail(t, f"198.51.100.{i}") == 0.0
    for i in range(5):  # the guard: no second guess from an address that failed
        with pytest.raises(AuthUnavailable, match="for this user"):
            t.attempt(f"198.51.100.{i}", ALICE)
    assert t.attempt("198.51.100.0", "bob@example.com") == 2.0  # other logins: the penalty only
    t.cancel("198.51.100.0", "bob@example.com")
    assert t.attempt("203.0.113.1", ALICE) == 0.0  # an address that has not failed: at once
    with pytest.raises(AuthUnavailable, match="for this user"):  # …one guess at a time
        t.attempt("203.0.113.1", ALICE)
    t.success("203.0.113.1", ALICE)  # the owner, on a new network
    assert t.attempt("192.0.2.50", ALICE) == 0.0  # and from where she logged in before
    t.success("192.0.2.50", ALICE)
    with pytest.raises(AuthUnavailable):  # the owner's success does not lift the guard
        t.attempt("198.51.100.3", ALICE)
    await clock.advance(301)
    assert t.attempt("198.51.100.3", ALICE) == 0.0  # the window has passed


async def test_trust_in_an_address_lasts_7_days() -> None:
    clock = FakeClock()
    t = make(clock)
    t.attempt("192.0.2.50", ALICE)
    t.success("192.0.2.50", ALICE)
    await clock.advance(7 * 86400 - 10)
    for i in range(5):
        fail(t, f"198.51.100.{i}")
    fail(t, "192.0.2.50")  # she mistypes once
    assert t.attempt("192.0.2.50", ALICE) == 2.0  # known good: slowed, not refused
    t.cancel("192.0.2.50", ALICE)
    await clock.advance(20)  # trust has expired: now her address is one that failed
    with pytest.raises(AuthUnavailable, match="for this user"):
        t.attempt("192.0.2.50", ALICE)


def test_client_key() -> None:
    assert client_key("192.0.2.1") == "192.0.2.1"
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("[2001:db8:1::1]") == "2001:db8:1::/64"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("unix-socket") == "unix-socket"


async def test_ipv6_neighbours_share_a_penalty() -> None:
    t = make(FakeClock(), limit=100)
    fail(t, "2001:db8::1")
    assert t.attempt("2001:db8::2", ALICE) == 2.0


async def test_memory_is_bounded_and_stale_entries_go() -> None:
    clock = FakeClock()
    t = make(clock, max_entries=100)
    for i in range(1000):
        fail(t, f"10.0.{i // 256}.{i % 256}", f"u{i}@example.com")
    assert t.tracked() == (100, 100)
    await clock.advance(301)
    fail(t, "192.0.2.1", "a@example.com")
    assert t.tracked() == (1, 1)


async def test_cancel_takes_back_an_attempt() -> None:
    t = make(FakeClock(), limit=1)
    for _ in range(3):
        t.attempt("192.0.2.1", ALICE)
        t.cancel("192.0.2.1", ALICE)  # the database was down: not a failure
    assert t.attempt("192.0.2.1", ALICE) == 0.0
    assert t.tracked() == (0, 0)


async def test_login_trusted_networks_get_no_penalty() -> None:
    t = Throttle(FakeClock(), limit=1, exempt=[parse_network("127.0.0.0/8"), parse_network("198.51.100.0/24")])
    for ip in ("127.0.0.1", "::ffff:198.51.100.9"):
        for _ in range(3):
            assert fail(t, ip) == 0.0
    assert t.tracked() == (0, 0)
    loopback = make(FakeClock(), limit=100)  # loopback is not exempt unless listed
    fail(loopback, "127.0.0.1")
    assert loopback.attempt("127.0.0.1", ALICE) == 2.0


async def test_an_attempt_never_answered_stops_holding_its_address_turn() -> None:
    clock = FakeClock()
    t = make(clock, limit=100)
    fail(t, "192.0.2.1")
    t.attempt("192.0.2.1", ALICE)  # its worker process dies: no success, failure nor cancel
    with pytest.raises(AuthUnavailable, match="being checked"):
        t.attempt("192.0.2.1", ALICE)
    await clock.advance(121)
    assert t.attempt("192.0.2.1", ALICE) == 2.0  # its turn again, with the penalty of its failure
