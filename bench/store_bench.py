"""Store benchmark: deliver rate into Maildirs, and opening a large folder with and without its
index (a 100,000-message INBOX by default).

    .venv/bin/python bench/store_bench.py [--messages 100000] [--deliveries 5000]
        [--concurrency 20] [--users 100] [--size 2048] [--dir /tmp/x]

Prints one line per figure. The folder is built by writing files directly (as a delivery agent
would) so that building it doesn't dominate the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import tempfile
import time

from pymailsrv.clock import SystemClock
from pymailsrv.store.maildir import MaildirStore
from pymailsrv.types import Account


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def bench_deliver(base: str, n: int, conc: int, users: int, size: int, fsync: bool) -> None:
    store = MaildirStore(hostname="bench.example", clock=SystemClock(), fsync=fsync)
    accounts = [Account(f"u{i}@example.test", os.path.join(base, f"u{i}"), quota_bytes=1 << 30) for i in range(users)]
    body = b"Subject: bench\n\n" + b"x" * (size - 17) + b"\n"
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            await store.deliver(accounts[i % users], body)

    t0, c0 = time.perf_counter(), cpu()
    await asyncio.gather(*(worker() for _ in range(conc)))
    dt, dc = time.perf_counter() - t0, cpu() - c0
    print(
        f"deliver fsync={'on' if fsync else 'off'}: {n} msgs x {size} B, {conc} concurrent, {users} users: "
        f"{n / dt:.0f} msgs/s, {dc / n * 1000:.2f} ms CPU/msg"
    )


def build_folder(root: str, n: int) -> None:
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    now = int(time.time()) - n
    for i in range(n):
        name = f"{now + i}.M{i % 1000000}P1Q{i}.bench,S=100,W=104"
        flags = "S" if i % 3 else ""
        with open(
            os.path.join(root, "new" if i % 10 == 0 else "cur", name + (f":2,{flags}" if i % 10 else "")), "wb"
        ) as f:
            f.write(b"Subject: x\n\n" + b"y" * 87 + b"\n")


async def open_folder(root: str, label: str) -> None:
    store = MaildirStore(hostname="bench.example", clock=SystemClock())
    acct = Account("big@example.test", root)
    t0, c0 = time.perf_counter(), cpu()
    box = await store.open(acct)
    await box.sync()
    dt, dc = time.perf_counter() - t0, cpu() - c0
    print(f"open+sync {len(box.messages())} msgs ({label}): {dt * 1000:.0f} ms wall, {dc * 1000:.0f} ms CPU")
    t0 = time.perf_counter()
    await box.sync()
    print(f"  second sync (nothing changed): {(time.perf_counter() - t0) * 1000:.1f} ms")
    await asyncio.sleep(0.2)
    await box.sync()
    await store.deliver(acct, b"Subject: one more\n\nbody\n")
    t0, c0 = time.perf_counter(), cpu()
    res = await box.sync()
    print(
        f"  sync picking up 1 new delivery ({len(res.added)} added): {(time.perf_counter() - t0) * 1000:.1f} ms wall, "
        f"{(cpu() - c0) * 1000:.1f} ms CPU"
    )
    await box.close()
    await store.aclose()  # the snapshot is written in the background
    t0, c0 = time.perf_counter(), cpu()
    box = await store.open(acct)
    await box.sync()
    print(f"  reopen in the same process (released folder kept): {(time.perf_counter() - t0) * 1000:.1f} ms wall, "
          f"{(cpu() - c0) * 1000:.1f} ms CPU")
    await box.close()
    await store.aclose()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--deliveries", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="store-bench-", dir=args.dir)
    try:
        if args.deliveries:
            await bench_deliver(
                os.path.join(base, "d1"), args.deliveries, args.concurrency, args.users, args.size, True
            )
            await bench_deliver(
                os.path.join(base, "d2"), args.deliveries, args.concurrency, args.users, args.size, False
            )
        if args.messages:
            big = os.path.join(base, "big")
            t0 = time.perf_counter()
            build_folder(big, args.messages)
            print(f"built {args.messages}-message folder in {time.perf_counter() - t0:.1f} s")
            await open_folder(big, "first open: no uidlist, no index")
            await open_folder(big, "uidlist and index exist")
            for name in ("pymailsrv-index.sqlite", "pymailsrv-snapshot"):
                os.unlink(os.path.join(big, name))
            await open_folder(big, "uidlist kept, index and snapshot removed: stat every file")
            await open_folder(big, "uidlist and index exist, again")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
