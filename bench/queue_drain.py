"""Drain benchmark: time to deliver a deferred queue of N messages to an SMTP sink.

    .venv/bin/python bench/queue_drain.py [--messages 10000] [--size 2048] [--concurrency 20]

The sink runs in its own process (bench/_smtp_sink.py) on loopback; the queue manager delivers
through the real SMTP client with relayhost = [127.0.0.1]:PORT (connection reuse, PIPELINING),
fsync on. Prints msgs/s and this process's CPU per message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.delivery.agents import AgentTable
from pymailsrv.delivery.dns import MxResolver, make_resolver
from pymailsrv.delivery.maildir import MaildirAgent
from pymailsrv.delivery.router import DirectoryRouter
from pymailsrv.delivery.smtp_client import SmtpClient
from pymailsrv.queue.base import Envelope, Recipient
from pymailsrv.queue.manager import QueueManager
from pymailsrv.queue.spool import FileSpool


def message(i: int, size: int) -> bytes:
    head = f"From: s@bench.test\r\nTo: r{i}@far.test\r\nSubject: drain {i}\r\nMessage-ID: <{i}@bench.test>\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    return head.encode() + line * max(1, size // len(line))


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(args: argparse.Namespace) -> None:
    sink = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "_smtp_sink.py")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(sink.stdout.readline())  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings({"data_directory": tmp, "queue_directory": f"{tmp}/q", "myhostname": "bench.test",
                                 "relayhost": f"[127.0.0.1]:{port}",
                                 "default_destination_concurrency_limit": str(args.concurrency),
                                 "default_process_limit": str(max(args.concurrency * 2, 20))})
            clock = SystemClock()
            setup = FileSpool(f"{tmp}/q", clock, fsync=False)
            for i in range(args.messages):
                env = Envelope("s@bench.test", [Recipient(f"r{i}@far.test")], arrival=time.time())
                await setup.put(env, message(i, args.size), state="deferred",
                                records=[{"k": "a", "n": 1, "next": 0}])
            directory = MemoryDirectory(f"{tmp}/vmail")
            smtp = SmtpClient(settings, MxResolver(make_resolver(["127.0.0.1:9"])))
            agents = AgentTable(MaildirAgent(settings, directory, None), smtp)  # type: ignore[arg-type]
            manager = QueueManager(settings, FileSpool(f"{tmp}/q", clock), DirectoryRouter(settings, directory),
                                   agents, clock)
            c0, t0 = cpu(), time.perf_counter()
            await manager.start()
            while manager.entries:
                await asyncio.sleep(0.05)
            elapsed, used = time.perf_counter() - t0, cpu() - c0
            await manager.stop()
            await smtp.close()
            left = sum(len(os.listdir(f"{tmp}/q/{d}")) for d in ("active", "deferred"))
        n = args.messages
        print(f"drain: {n} msgs x {args.size} B to an SMTP sink, concurrency {args.concurrency}: "
              f"{elapsed:.2f} s, {n / elapsed:.0f} msgs/s, {used / n * 1000:.2f} ms CPU/msg "
              f"(queue process only), {left} left")
    finally:
        sink.stdin.close()  # type: ignore[union-attr]
        sink.wait(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--concurrency", type=int, default=20)
    args = p.parse_args()
    if not 1 <= args.messages <= 200_000:
        raise SystemExit("--messages out of range")
    import logging
    logging.getLogger("pymailsrv").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
