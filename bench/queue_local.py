"""Local-delivery rate of the Queue: ``Queue.submit`` from N concurrent producers, every message
to a local mailbox (fast path: delivered into the Maildir before submit returns), 100 users.

    .venv/bin/python bench/queue_local.py [--messages 5000] [--size 2048] [--sessions 20]
                                               [--no-fast-path]

Uses the store package's MaildirStore (tmp → fsync → rename, maildirsize) and the db package's
MemoryDirectory; prints msgs/s and CPU per message (this process, all threads). With
--no-fast-path every message goes through the spool first (put + fsync, then delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.delivery.agents import AgentTable
from pymailsrv.delivery.maildir import MaildirAgent
from pymailsrv.delivery.router import DirectoryRouter
from pymailsrv.queue.base import Envelope, Recipient
from pymailsrv.queue.manager import QueueManager
from pymailsrv.queue.spool import FileSpool


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def message(i: int, size: int) -> bytes:
    head = (f"Received: from client (localhost [127.0.0.1]) by bench.test with ESMTP id {i}\r\n"
            f"From: s@far.test\r\nTo: u{i % 100}@bench.test\r\nSubject: bench {i}\r\n"
            f"Message-ID: <{i}@far.test>\r\n\r\n")
    line = b"y" * 76 + b"\r\n"
    return head.encode() + line * max(1, size // len(line))


async def run(args: argparse.Namespace) -> None:
    from pymailsrv.store.maildir import MaildirStore  # the store engineer's Maildir store

    if args.threads:
        from concurrent.futures import ThreadPoolExecutor
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        base = f"{tmp}/vmail"
        settings = Settings({"data_directory": tmp, "queue_directory": f"{tmp}/q", "myhostname": "bench.test",
                             "virtual_mailbox_base": base})
        directory = MemoryDirectory(base)
        directory.add_domain("bench.test")
        for u in range(100):
            directory.add_mailbox(f"u{u}@bench.test", maildir=f"bench.test/u{u}/")
        store = MaildirStore(base, "bench.test")
        clock = SystemClock()
        manager = QueueManager(settings, FileSpool(f"{tmp}/q", clock), DirectoryRouter(settings, directory),
                               AgentTable(MaildirAgent(settings, directory, store)), clock,
                               fast_path=not args.no_fast_path)
        await manager.start()
        bodies = [message(i, args.size) for i in range(200)]
        counter = iter(range(args.messages))

        async def producer() -> None:
            for i in counter:
                env = Envelope("s@far.test", [Recipient(f"u{i % 100}@bench.test")])
                await manager.submit(env, bodies[i % 200])

        c0, t0, m0 = cpu(), time.perf_counter(), time.thread_time()
        await asyncio.gather(*(producer() for _ in range(args.sessions)))
        while manager.entries:
            await asyncio.sleep(0.01)
        elapsed, used, main_used = time.perf_counter() - t0, cpu() - c0, time.thread_time() - m0
        await manager.stop()
        delivered = sum(len(os.listdir(f"{base}/bench.test/u{u}/new")) for u in range(100))
    n = args.messages
    mode = "spool first" if args.no_fast_path else "fast path"
    print(f"local delivery ({mode}): {n} msgs x {args.size} B, {args.sessions} producers, 100 mailboxes: "
          f"{elapsed:.2f} s, {n / elapsed:.0f} msgs/s, {used / n * 1000:.2f} ms CPU/msg "
          f"({main_used / n * 1000:.2f} ms on the event loop), {delivered} delivered")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--no-fast-path", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="size of the default thread pool (0 = asyncio's)")
    args = p.parse_args()
    if not 1 <= args.messages <= 200_000:
        raise SystemExit("--messages out of range")
    logging.getLogger("pymailsrv").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
