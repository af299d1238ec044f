#!/usr/bin/env python3
"""Run pymailsrv's IMAP server alone for benchmarks: users u0..u99@bench.test password ``pw``.

    bench/imap_serve.py [--port 1144] [--store memory|maildir] [--base /var/lab/postfix-vmail]
        [--per-user 200]   (memory store: messages prefilled per user)

With ``--store maildir`` it serves BASE/bench.test/u<i>/ — the same Maildirs Dovecot serves
(bench/imap_load.py --prefill BASE fills them). Prints "ready <port> pid <pid>" when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor

from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.clock import SystemClock
from pymailsrv.imap.server import ImapConfig, ImapServer
from pymailsrv.net import ConnectionRegistry, start_server
from pymailsrv.types import Account


class BenchAuth:
    def __init__(self, base: str, users: int) -> None:
        self.accounts = {f"u{i}@bench.test": Account(f"u{i}@bench.test", f"{base}/bench.test/u{i}/")
                         for i in range(users)}

    async def authenticate(self, username: str, password: str, *, service: str, remote_ip: str) -> Account | None:
        acct = self.accounts.get(username.lower())
        return acct if acct is not None and password == "pw" else None


STATS: dict[str, list[float]] = {}


def _instrument(server: ImapServer) -> None:
    """Main-thread CPU per command name (time.thread_time around each dispatch; awaits of
    other sessions interleave, so figures are indicative under concurrency)."""
    import time

    orig = server.dispatch

    async def dispatch(s, cmd):  # type: ignore[no-untyped-def]
        t = time.thread_time()
        try:
            await orig(s, cmd)
        finally:
            st = STATS.setdefault(cmd.name, [0, 0.0])
            st[0] += 1
            st[1] += time.thread_time() - t

    server.dispatch = dispatch  # type: ignore[method-assign]


async def main_async(a: argparse.Namespace) -> None:
    if a.threads:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(a.threads))
    auth = BenchAuth(a.base, a.users)
    if a.store == "memory":
        from pymailsrv.store.memory import MemoryStore

        store = MemoryStore(SystemClock())
        for acct in list(auth.accounts.values())[: a.users]:
            for n in range(a.per_user):
                await store.deliver(acct, (f"From: b@example.org\nSubject: bench {n}\n\n" + "x" * 70 * (1 + n % 40)
                                           + "\n").encode())
    else:
        from pymailsrv.store.maildir import MaildirStore  # type: ignore[import-not-found]

        store = MaildirStore(hostname="bench", clock=SystemClock())
    config = ImapConfig(plaintext=PlaintextRule(disable_plaintext_auth=False), max_userip=10000,
                        sync_interval=a.sync_interval)
    server = ImapServer(config, auth, store)
    if a.cmd_stats:
        _instrument(server)
    listener = await start_server(server.handle, "127.0.0.1", a.port, registry=ConnectionRegistry())
    print(f"ready {listener.port} pid {os.getpid()}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await listener.close(grace=1)
    if a.cmd_stats:
        for name, (n, cpu) in sorted(STATS.items(), key=lambda kv: -kv[1][1]):
            print(f"{name:14s} n={n:6d} main-thread cpu {cpu:6.2f}s  {cpu / n * 1000:6.3f} ms/cmd", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=1144)
    ap.add_argument("--store", choices=("memory", "maildir"), default="memory")
    ap.add_argument("--base", default="/var/lab/postfix-vmail")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--per-user", type=int, default=200)
    ap.add_argument("--sync-interval", type=float, default=1.0)
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop (pip install uvloop)")
    ap.add_argument("--cmd-stats", action="store_true", help="print CPU per command at exit")
    ap.add_argument("--threads", type=int, default=0, help="default executor size (0 = asyncio's)")
    a = ap.parse_args()
    if a.uvloop:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    asyncio.run(main_async(a))


if __name__ == "__main__":
    main()
