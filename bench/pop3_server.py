#!/usr/bin/env python3
"""Run pymailsrv's POP3 server alone for benchmarks: users u0..u<N-1>@bench.test, password ``pw``,
Maildirs BASE/bench.test/u<i>/ (the layout of ../shared/anchors, shared with Dovecot).

usage: pop3_server.py [--base /var/lab/postfix-vmail] [--port 1111] [--users 100] [--first-user 0]
                      [--store maildir|memory] [--seconds 900]

``--store memory`` loads the Maildirs into the in-memory store first (protocol cost without disk).
Stops on SIGTERM/SIGINT or after --seconds (bounded, never left running).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.config.settings import Listen
from pymailsrv.pop3.maildrop import DEFAULT_UIDL_FORMAT, compile_uidl_format
from pymailsrv.pop3.options import Pop3Options, Pop3Services
from pymailsrv.pop3.server import Pop3Server
from pymailsrv.types import Account


class BenchAuthenticator:
    def __init__(self, base: str, users: int, first: int = 0) -> None:
        self.accounts = {f"u{i}@bench.test": Account(f"u{i}@bench.test",
                                                     os.path.join(base, "bench.test", f"u{i}") + "/")
                         for i in range(first, first + users)}

    async def authenticate(self, username: str, password: str, *, service: str,
                           remote_ip: str) -> Account | None:
        acct = self.accounts.get(username.lower())
        return acct if acct is not None and password == "pw" else None


async def _load_memory(store, auth: BenchAuthenticator) -> int:  # type: ignore[no-untyped-def]
    n = 0
    for acct in auth.accounts.values():
        for sub in ("cur", "new"):
            d = os.path.join(acct.maildir, sub)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), "rb") as fh:
                    await store.deliver(acct, fh.read())
                n += 1
    return n


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="/var/lab/postfix-vmail")
    ap.add_argument("--port", type=int, default=1111)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--store", choices=("maildir", "memory"), default="maildir")
    ap.add_argument("--seconds", type=float, default=900)
    ap.add_argument("--first-user", type=int, default=0)
    a = ap.parse_args()
    auth = BenchAuthenticator(a.base, a.users, a.first_user)
    if a.store == "memory":
        from pymailsrv.store.memory import MemoryStore

        store = MemoryStore()
        print(f"loaded {await _load_memory(store, auth)} messages into memory", flush=True)
    else:
        from pymailsrv.store.maildir import MaildirStore  # type: ignore[import-not-found]

        store = MaildirStore(hostname="bench.test")
    options = Pop3Options(uidl_format=compile_uidl_format(DEFAULT_UIDL_FORMAT), userip_limit=1000,
                          plaintext=PlaintextRule(disable_plaintext_auth=False))
    server = Pop3Server(options, Pop3Services(auth, store))
    await server.listen([Listen("127.0.0.1", a.port)])
    t = os.times()
    print(f"startup cpu: user {t.user:.2f}s system {t.system:.2f}s", flush=True)
    print(f"pymailsrv pop3 ({a.store}) listening on 127.0.0.1:{server.ports[0]} pid {os.getpid()}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), a.seconds)
    except TimeoutError:
        pass
    await server.close(1.0)
    t = os.times()
    print(f"server cpu: user {t.user:.2f}s system {t.system:.2f}s", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
