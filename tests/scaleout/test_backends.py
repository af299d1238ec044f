"""Backend choice: rendezvous hashing over proxy_backends, the proxy_host_query statement."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from pymailsrv.db.proxy_hosts import SqlProxyHosts, compile_query
from pymailsrv.errors import ConfigError
from pymailsrv.proxy.backends import BackendChooser, Destination, rendezvous

USERS = [f"user{i}@example.test" for i in range(2000)]
BACKENDS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


def test_every_front_node_picks_the_same_backend_whatever_the_list_order() -> None:
    for user in USERS[:200]:
        assert rendezvous(user, BACKENDS) == rendezvous(user, list(reversed(BACKENDS)))


def test_removing_a_backend_moves_only_its_users_and_spreads_them() -> None:
    before = {u: rendezvous(u, BACKENDS) for u in USERS}
    after = {u: rendezvous(u, BACKENDS[:-1]) for u in USERS}
    moved = [u for u in USERS if before[u] != after[u]]
    assert moved and all(before[u] == BACKENDS[-1] for u in moved)
    assert set(Counter(after[u] for u in moved)) == set(BACKENDS[:-1])


def test_users_are_spread_evenly() -> None:
    counts = Counter(rendezvous(u, BACKENDS) for u in USERS)
    assert all(abs(n - len(USERS) / 4) < len(USERS) / 10 for n in counts.values()), counts


def test_query_variables_become_bound_parameters() -> None:
    clause, names = compile_query("SELECT host, port FROM t WHERE u = '%u' AND d = %d AND x = 'a:b' AND p LIKE '5%%'")
    assert names == {"login", "domain"}
    assert str(clause) == "SELECT host, port FROM t WHERE u = :login AND d = :domain AND x = 'a:b' AND p LIKE '5%'"
    with pytest.raises(ConfigError, match="unknown variable %x"):
        compile_query("SELECT host FROM t WHERE u = %x")


class _Stored:
    def __init__(self, answer: tuple[str, int | None] | None) -> None:
        self.answer = answer

    async def proxy_host(self, login: str, service: str) -> tuple[str, int | None] | None:
        return self.answer

    async def close(self) -> None:
        pass


def test_chooser_prefers_the_directory_then_hashes_then_serves_locally() -> None:
    ports = {"imap": 143, "pop3": 110}

    async def choose(chooser: BackendChooser, service: str = "imap") -> Destination | None:
        return await chooser.choose("alice@example.test", service)

    stored = BackendChooser(BACKENDS, ports, _Stored(("[2001:db8::7]", None)))
    assert asyncio.run(choose(stored, "pop3")) == Destination("2001:db8::7", 110)
    assert str(asyncio.run(choose(stored))) == "[2001:db8::7]:143"
    hashed = BackendChooser(BACKENDS, ports, _Stored(None))
    assert asyncio.run(choose(hashed)) == Destination(rendezvous("alice@example.test", BACKENDS), 143)
    assert asyncio.run(choose(BackendChooser([], ports, _Stored(None)))) is None
    assert not BackendChooser([], ports, None).enabled


def test_sql_lookup_answers_host_and_port(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE proxy_host (username TEXT, service TEXT, host TEXT, port INTEGER)")
        db.execute("INSERT INTO proxy_host VALUES ('alice@example.test', 'imap', '10.0.0.9', 1143)")
        db.execute("INSERT INTO proxy_host VALUES ('bob@example.test', 'imap', '10.0.0.8', NULL)")

    async def run() -> list[tuple[str, int | None] | None]:
        hosts = SqlProxyHosts(f"sqlite+aiosqlite:///{path}",
                              "SELECT host, port FROM proxy_host WHERE username = '%u' AND service = '%s'")
        try:
            return [await hosts.proxy_host(u, "imap") for u in
                    ("alice@example.test", "bob@example.test", "x' OR '1'='1")]
        finally:
            await hosts.close()

    assert asyncio.run(run()) == [("10.0.0.9", 1143), ("10.0.0.8", None), None]
