"""check_greylist's cost per RCPT with greylist_shared on and off: the node's own Greylist, and
the shared one on SQLite and on MariaDB, for triplets never seen (two primary-key reads; the
insert runs in the background, at most 64 in flight) and for triplets that passed (the node's
cache: no query).

    .venv/bin/python bench/greylist_shared.py [--verdicts 2000] [--rounds 3] [--backends sqlite,mariadb]

Rounds are interleaved (local, sqlite, mariadb, local, ...), so a noisy machine affects all
alike. MariaDB: MARIADB_HOST (default 127.0.0.1:3306), user root, a scratch database dropped
afterwards. Prints verdicts/s per (backend, kind) and round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymailsrv.clock import FakeClock
from pymailsrv.db import schema
from pymailsrv.db.shared_greylist import SharedGreylistStore
from pymailsrv.policy.greylist import Greylist
from pymailsrv.policy.shared_greylist import SharedGreylist


def _mariadb() -> tuple[str, str]:
    import pymysql

    host, _, port = os.environ.get("MARIADB_HOST", "127.0.0.1:3306").partition(":")
    name = f"pymailsrv_bench_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host=host, port=int(port or 3306), user="root", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn.close()
    return f"mysql+aiomysql://root@{host}:{port or 3306}/{name}?charset=utf8mb4", name


def _drop(name: str) -> None:
    import pymysql

    host, _, port = os.environ.get("MARIADB_HOST", "127.0.0.1:3306").partition(":")
    conn = pymysql.connect(host=host, port=int(port or 3306), user="root", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")
    conn.close()


async def _round(url: str | None, verdicts: int, seq: int) -> dict[str, float]:
    """verdicts/s for new and for passed triplets (``url`` None: the node's own Greylist)."""
    clock = FakeClock()
    local = Greylist(clock, delay=300, auto_whitelist=0)
    store = SharedGreylistStore(url) if url else None
    g = SharedGreylist(local, store, clock) if store else local
    triplets = [(f"198.51.{seq % 250}.{i % 250}", f"s{i}@sender.example", f"r{seq}-{i}@example.com")
                for i in range(verdicts)]
    out: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        for t in triplets:
            await g.verdict(*t)  # first seen: greylisted
        out["new"] = verdicts / (time.perf_counter() - t0)
        if isinstance(g, SharedGreylist):
            await g.drain()  # the clock jumps 301 s: the writes would be done by then
        await clock.advance(301)
        for t in triplets:
            await g.verdict(*t)  # the retry passes: recorded, and cached from now on
        if isinstance(g, SharedGreylist):
            await g.drain()
        t0 = time.perf_counter()
        for t in triplets:
            await g.verdict(*t)
        out["passed"] = verdicts / (time.perf_counter() - t0)
    finally:
        if isinstance(g, SharedGreylist):
            await g.close()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--verdicts", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,mariadb")
    args = ap.parse_args()
    urls: dict[str, str | None] = {"local": None}
    dropped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                urls["sqlite"] = f"sqlite+aiosqlite:///{tmp}/bench.db"
            elif backend == "mariadb":
                urls["mariadb"], name = _mariadb()
                dropped.append(name)
        try:
            for url in urls.values():
                if url:
                    await schema.create_schema(url)
            seq = 0
            for rnd in range(1, args.rounds + 1):
                for backend, url in urls.items():
                    seq += 1
                    got = await _round(url, args.verdicts, seq)
                    print(f"round {rnd} {backend:8} new {got['new']:9.0f}/s  passed {got['passed']:9.0f}/s",
                          flush=True)
        finally:
            for name in dropped:
                _drop(name)


if __name__ == "__main__":
    asyncio.run(main())
