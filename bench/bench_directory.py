"""Directory lookup rate: what SMTP does per RCPT (is_local_domain, resolve, mailbox of each final
recipient), against SQLite and MariaDB, with the TTL cache off and on.

    .venv/bin/python bench/bench_directory.py [--rcpts 1000] [--mariadb 127.0.0.1:3306]

Prints one line per (backend, cache) with RCPT lookups per second. Seeds 500 mailboxes (identity
aliases), 100 aliases and a catch-all in a scratch database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid

from pymailsrv.db.directory import SqlDirectory
from pymailsrv.db.schema import create_schema, seed

MAILBOXES = 500


def rows() -> dict[str, list[dict[str, object]]]:
    users = [f"user{i}@example.com" for i in range(MAILBOXES)]
    return {
        "domain": [{"domain": "example.com"}, {"domain": "example.net"}],
        "alias_domain": [{"alias_domain": "example.net", "target_domain": "example.com"}],
        "mailbox": [{"username": u} for u in users],
        "alias": [{"address": u, "goto": u} for u in users]
        + [{"address": f"list{i}@example.com", "goto": f"{users[i]},{users[i + 1]}"} for i in range(100)]
        + [{"address": "@example.com", "goto": users[0]}],
    }


def keys(n: int) -> list[str]:
    rnd = random.Random(7)
    pick = [lambda: f"user{rnd.randrange(MAILBOXES)}@example.com",
            lambda: f"user{rnd.randrange(MAILBOXES)}+tag@example.com",
            lambda: f"list{rnd.randrange(100)}@example.com",
            lambda: f"user{rnd.randrange(MAILBOXES)}@example.net",
            lambda: f"nobody{rnd.randrange(10000)}@example.com"]
    return [rnd.choice(pick)() for _ in range(n)]


async def rcpt(d: SqlDirectory, address: str) -> None:
    await d.is_local_domain(address.rpartition("@")[2])
    for final in await d.resolve(address):
        await d.mailbox(final)


async def measure(url: str, ttl: float, addresses: list[str]) -> float:
    d = SqlDirectory(url, "/srv/vmail", "+", cache_ttl=ttl)
    try:
        for a in addresses[:50]:  # warm the pool
            await rcpt(d, a)
        start = time.perf_counter()
        for a in addresses:
            await rcpt(d, a)
        return len(addresses) / (time.perf_counter() - start)
    finally:
        await d.close()


async def run(url: str, name: str, n: int) -> None:
    await create_schema(url)
    await seed(url, rows())
    addresses = keys(n)
    for ttl in (0.0, 5.0):
        rate = await measure(url, ttl, addresses)
        print(f"{name:8} cache_ttl={ttl:>3.0f}s  {rate:8.0f} RCPT lookups/s  ({n} RCPTs)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rcpts", type=int, default=1000)
    p.add_argument("--mariadb", default="127.0.0.1:3306", help="host:port, or '' to skip")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite+aiosqlite:///{tmp}/bench.db", "sqlite", args.rcpts))
    if args.mariadb:
        import pymysql

        host, _, port = args.mariadb.partition(":")
        name = f"pymailsrv_bench_{uuid.uuid4().hex[:8]}"
        admin = pymysql.connect(host=host, port=int(port or 3306), user="root", autocommit=True)
        admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        try:
            asyncio.run(run(f"mysql+aiomysql://root@{args.mariadb}/{name}", "mariadb", args.rcpts))
        finally:
            admin.cursor().execute(f"DROP DATABASE `{name}`")
            admin.close()


if __name__ == "__main__":
    main()
