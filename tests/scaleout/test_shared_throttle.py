"""auth_throttle_shared: a client's failures on one node slow its logins on another (two
SharedThrottles on one MariaDB database, as two nodes), and a database that is down changes
nothing but the sharing."""

from __future__ import annotations

import asyncio

from pymailsrv.auth.shared_throttle import SharedThrottle
from pymailsrv.auth.throttle import Throttle
from pymailsrv.clock import FakeClock
from pymailsrv.config.settings import Settings
from pymailsrv.db import schema
from pymailsrv.db.shared_state import SharedFailures

SETTINGS = Settings({"auth_failure_delay": "2s", "auth_failure_window": "300s",
                     "login_trusted_networks": "192.0.2.100/32"})


def _node(store: SharedFailures, clock: FakeClock) -> SharedThrottle:
    return SharedThrottle(Throttle(clock, delay=2.0), store, SETTINGS, clock)


def test_failures_on_one_node_slow_the_client_on_another(mariadb_url: str) -> None:
    async def run() -> list[float]:
        await schema.create_schema(mariadb_url)
        clock = FakeClock()
        a_store, b_store = SharedFailures(mariadb_url), SharedFailures(mariadb_url)
        a, b = _node(a_store, clock), _node(b_store, clock)
        try:
            waits = [await b.admit("198.51.100.7", "alice@example.test")]
            b.success("198.51.100.7", "alice@example.test")
            await b.drain()
            for _ in range(3):  # three failures on node A
                await a.admit("198.51.100.7", "alice@example.test")
                a.failed("198.51.100.7", "alice@example.test")
                await a.drain()
            waits.append(await b.admit("198.51.100.7", "bob@example.test"))  # node B: 2 * 2**2
            b.failed("198.51.100.7", "bob@example.test")
            waits.append(await b.admit("192.0.2.100", "alice@example.test"))  # trusted: never
            b.success("192.0.2.100", "alice@example.test")
            await b.drain()
            a.success("198.51.100.7", "alice@example.test")  # forgiven everywhere
            await a.drain()
            waits.append(await b.admit("203.0.113.1", "alice@example.test"))
            await b.admit("198.51.100.9", "carol@example.test")
            b.failed("198.51.100.9", "carol@example.test")
            await b.drain()
            waits.append(await a.admit("198.51.100.9", "carol@example.test"))
            a.cancel("198.51.100.9", "carol@example.test")
            await clock.advance(301)  # the window has passed: the failure counts no more
            waits.append(await a.admit("198.51.100.9", "carol@example.test"))
            return waits
        finally:
            await a_store.close()
            await b_store.close()

    assert asyncio.run(run()) == [0.0, 8.0, 0.0, 0.0, 2.0, 0.0]


def test_a_database_that_is_down_leaves_the_nodes_own_count() -> None:
    async def run() -> tuple[float, float]:
        clock = FakeClock()
        store = SharedFailures("mysql+aiomysql://root@127.0.0.1:1/nowhere", timeout=2.0)
        node = _node(store, clock)
        try:
            first = await node.admit("198.51.100.7", "alice@example.test")
            node.failed("198.51.100.7", "alice@example.test")
            await node.drain()
            return first, await node.admit("198.51.100.7", "alice@example.test")
        finally:
            await store.close()

    assert asyncio.run(run()) == (0.0, 2.0)
