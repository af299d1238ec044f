"""Failed-login throttling on a FakeClock: growing delay, temporary refusal, expiry, bounded memory."""

from __future__ import annotations

import ipaddress

import pytest

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.auth.throttle import Throttle, client_key
from pymailsrv.clock import FakeClock


def make(clock: FakeClock, **kw: float) -> Throttle:
    params: dict[str, float] = {"delay": 2.0, "limit": 5, "window": 300.0, "max_delay": 30.0}
    params.update(kw)
    return Throttle(clock, delay=params["delay"], limit=int(params["limit"]), window=params["window"],
                    max_delay=params["max_delay"], max_entries=int(params.get("max_entries", 10_000)))


async def test_delay_grows_then_caps() -> None:
    t = make(FakeClock(), limit=100)
    delays = [t.failure("192.0.2.1", "alice@example.com") for _ in range(7)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


async def test_refusal_per_client_and_expiry() -> None:
    clock = FakeClock()
    t = make(clock)
    for i in range(5):
        t.check("192.0.2.1", f"user{i}@example.com")
        t.failure("192.0.2.1", f"user{i}@example.com")
    with pytest.raises(AuthUnavailable):
        t.check("192.0.2.1", "someone@example.com")
    t.check("192.0.2.2", "someone@example.com")  # another client is not affected
    await clock.advance(299)
    with pytest.raises(AuthUnavailable):
        t.check("192.0.2.1", "someone@example.com")
    await clock.advance(2)
    t.check("192.0.2.1", "someone@example.com")  # the window has passed


async def test_refusal_per_login_across_clients() -> None:
    clock = FakeClock()
    t = make(clock)
    for i in range(5):
        t.failure(f"198.51.100.{i}", "alice@example.com")
    assert t.refusal("203.0.113.9", "alice@example.com") == "too many failed logins for this user"
    assert t.refusal("203.0.113.9", "bob@example.com") is None


async def test_sliding_window_releases_one_at_a_time() -> None:
    clock = FakeClock()
    t = make(clock)
    for _ in range(5):
        t.failure("192.0.2.1", "")
        await clock.advance(10)
    assert t.refusal("192.0.2.1", "") is not None
    await clock.advance(300 - 50 + 1)  # only the first failure has aged out
    assert t.refusal("192.0.2.1", "") is None
    t.failure("192.0.2.1", "")
    assert t.refusal("192.0.2.1", "") is not None


async def test_success_forgives_the_login_not_the_client() -> None:
    t = make(FakeClock())
    for _ in range(3):
        t.failure("192.0.2.1", "alice@example.com")
    assert t.attempt("192.0.2.1", "alice@example.com") == 16.0  # would be the 4th failure
    t.success("192.0.2.1", "alice@example.com")
    assert t.failure("192.0.2.7", "alice@example.com") == 2.0
    assert t.failure("192.0.2.1", "bob@example.com") == 16.0  # the 4th failure from this client


async def test_parallel_attempts_are_counted_before_the_answer() -> None:
    t = make(FakeClock())
    for i in range(5):
        t.attempt("192.0.2.1", f"u{i}@example.com")  # none answered yet
    with pytest.raises(AuthUnavailable):
        t.attempt("192.0.2.1", "u9@example.com")


async def test_parallel_attempts_from_a_client_known_good_count_only_once_answered() -> None:
    t = make(FakeClock())
    t.attempt("192.0.2.1", "alice@example.com")
    t.success("192.0.2.1", "alice@example.com")  # e.g. a webmail host, an office NAT
    for i in range(50):  # the server restarted: every client reconnects at once
        t.attempt("192.0.2.1", f"u{i % 5}@example.com")
    for i in range(50):
        t.success("192.0.2.1", f"u{i % 5}@example.com")
    for i in range(5):  # wrong passwords still add up
        t.attempt("192.0.2.1", f"x{i}@example.com")
        t.failed("192.0.2.1", f"x{i}@example.com")
    with pytest.raises(AuthUnavailable):
        t.attempt("192.0.2.1", "alice@example.com")
    for i in range(5):  # an address never seen to log in: pending attempts count at once
        t.attempt("192.0.2.9", f"u{i}@example.com")
    with pytest.raises(AuthUnavailable):
        t.attempt("192.0.2.9", "u9@example.com")


async def test_loopback_not_exempt_by_default_but_can_be() -> None:
    t = make(FakeClock(), limit=1)
    t.failure("127.0.0.1", "")
    with pytest.raises(AuthUnavailable):
        t.check("127.0.0.1", "")
    t2 = Throttle(FakeClock(), limit=1, exempt=[ipaddress.ip_network("127.0.0.0/8")])
    t2.failure("127.0.0.1", "x")
    t2.check("127.0.0.1", "x")
    assert t2.tracked() == (0, 0)


def test_client_key() -> None:
    assert client_key("192.0.2.1") == "192.0.2.1"
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("[2001:db8:1::1]") == "2001:db8:1::/64"
    assert client_key("unix-socket") == "unix-socket"


async def test_memory_is_bounded_and_stale_entries_go() -> None:
    clock = FakeClock()
    t = make(clock, max_entries=100)
    for i in range(1000):
        t.failure(f"10.0.{i // 256}.{i % 256}", f"u{i}@example.com")
    assert t.tracked() == (100, 100)
    await clock.advance(301)
    t.failure("192.0.2.1", "a@example.com")
    assert t.tracked() == (1, 1)


async def test_cancel_takes_back_an_attempt() -> None:
    t = make(FakeClock(), limit=2)
    t.attempt("192.0.2.1", "a@example.com")
    t.cancel("192.0.2.1", "a@example.com")
    t.attempt("192.0.2.1", "a@example.com")
    t.check("192.0.2.1", "a@example.com")  # one failure so far, limit 2


async def test_a_known_client_is_not_locked_out_of_its_login() -> None:
    clock = FakeClock()
    t = make(clock)
    t.attempt("192.0.2.50", "alice@example.com")
    t.success("192.0.2.50", "alice@example.com")  # alice's phone
    await clock.advance(3600)
    for i in range(5):  # a botnet guesses alice's password
        t.failure(f"198.51.100.{i}", "alice@example.com")
    assert t.refusal("203.0.113.1", "alice@example.com") is not None
    assert t.refusal("192.0.2.50", "alice@example.com") is None
    await clock.advance(7 * 86400)
    for i in range(5):
        t.failure(f"198.51.100.{i + 10}", "alice@example.com")
    assert t.refusal("192.0.2.50", "alice@example.com") is not None  # trust expired
