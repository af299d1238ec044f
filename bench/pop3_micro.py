#!/usr/bin/env python3
"""CPU cost of the POP3 session per RETR, without sockets: a fake connection feeds ``RETR n``
lines to one Session over the in-memory store and discards the replies.

usage: pop3_micro.py [--messages 1000] [--size 14000] [--profile]
Prints microseconds of CPU per RETR (parse, dispatch, CRLF + dot-stuffing, reply assembly).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pymailsrv.net.conn import ConnectionClosed
from pymailsrv.pop3.commands import COMMANDS
from pymailsrv.pop3.options import Pop3Options, Pop3Services
from pymailsrv.pop3.session import Session
from pymailsrv.store.memory import MemoryStore
from pymailsrv.types import Account

ACCOUNT = Account("bench@example.test", "/nonexistent/")


class Auth:
    async def authenticate(self, username: str, password: str, *, service: str,
                           remote_ip: str) -> Account | None:
        return ACCOUNT


class FeedConnection:
    peer_ip = "127.0.0.1"
    tls = False
    transport = None
    last_activity = 0.0

    def __init__(self, count: int) -> None:
        self.chunks = [b"USER bench@example.test\r\n", b"PASS x\r\n"]
        self.chunks += [b"RETR %d\r\n" % (i + 1) for i in range(count)] + [b"QUIT\r\n"]
        self.pos = 0
        self.written = 0

    async def read_some(self, max_bytes: int = 65536) -> bytes:
        if self.pos >= len(self.chunks):
            raise ConnectionClosed()
        self.pos += 1
        await asyncio.sleep(0)  # one loop turn per command, as with a real client
        return self.chunks[self.pos - 1]

    def write(self, data: bytes) -> None:
        self.written += len(data)

    async def drain(self) -> None:
        pass

    async def start_tls(self, context: object, *, timeout: float = 30.0) -> None:
        pass

    def close(self) -> None:
        pass


def message(i: int, size: int) -> bytes:
    head = b"From: a@example.test\nSubject: message %d\n\n" % i
    line = b"lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body + b".leading dot line\n"


async def run(count: int, size: int) -> tuple[float, int]:
    store = MemoryStore()
    for i in range(count):
        await store.deliver(ACCOUNT, message(i, size))
    conn = FeedConnection(count)
    t0 = time.process_time()
    await Session(conn, Pop3Options(), Pop3Services(Auth(), store), COMMANDS).run()  # type: ignore[arg-type]
    return time.process_time() - t0, conn.written


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=14000)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.messages <= 100_000:
        raise SystemExit("messages out of range")
    if a.profile:
        prof = cProfile.Profile(time.process_time)
        prof.runcall(asyncio.run, run(a.messages, a.size))
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    cpu, written = asyncio.run(run(a.messages, a.size))
    print(f"{a.messages} RETR of ~{a.size} bytes: {cpu * 1e6 / a.messages:.1f} us CPU per message, "
          f"{written / 2**20:.1f} MiB written")


if __name__ == "__main__":
    main()
