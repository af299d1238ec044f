"""net.limits: the per-client connection bookkeeping every protocol shares (Postfix's anvil)."""

from __future__ import annotations

import pytest

from pymailsrv.clock import FakeClock
from pymailsrv.net import limits
from pymailsrv.net.networks import parse_networks


def test_count_limit_and_release() -> None:
    lim = limits.ConnectionLimiter(FakeClock(), count_limit=2)
    assert [lim.open("192.0.2.7") for _ in range(3)] == ["", "", "count"]
    assert lim.active("192.0.2.7") == 2
    lim.close("192.0.2.7")
    assert lim.open("192.0.2.7") == ""
    assert lim.open("192.0.2.8") == ""  # another client has its own count


def test_an_ipv4_mapped_address_is_the_same_client() -> None:
    lim = limits.ConnectionLimiter(FakeClock(), count_limit=1)
    assert lim.open("::ffff:192.0.2.7") == ""
    assert lim.open("192.0.2.7") == "count"
    lim.close("192.0.2.7")
    assert lim.active("::ffff:192.0.2.7") == 0


def test_exempt_clients_are_counted_but_never_refused() -> None:
    nets, _ = parse_networks(["127.0.0.0/8"])
    lim = limits.ConnectionLimiter(FakeClock(), count_limit=1, rate_limit=1, exceptions=nets)
    assert [lim.open("::ffff:127.0.0.1") for _ in range(5)] == [""] * 5
    assert lim.active("127.0.0.1") == 5


async def test_rate_limit_over_the_clock() -> None:
    clock = FakeClock()
    lim = limits.ConnectionLimiter(clock, rate_limit=2, rate_unit=60)
    for _ in range(2):
        assert lim.open("192.0.2.7") == ""
        lim.close("192.0.2.7")
    assert await lim.admit("192.0.2.7") == ("rate", 1)
    await clock.advance(61)
    assert await lim.admit("192.0.2.7") == ("", 1)


def test_limiter_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_TRACKED", 100)
    clock = FakeClock()
    lim = limits.ConnectionLimiter(clock, count_limit=0, rate_limit=5, rate_unit=60)
    for i in range(1000):
        assert lim.open(f"10.0.{i // 256}.{i % 256}") == ""
        lim.close(f"10.0.{i // 256}.{i % 256}")
        if i % 100 == 0:
            clock._mono += 61  # older attempts fall out of the window
    assert len(lim._recent) <= 201
