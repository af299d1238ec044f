#!/usr/bin/env python3
"""Open N concurrent IMAP sessions that LOGIN, SELECT INBOX and IDLE, then print the server's RSS.

    bench/imap_idle_conns.py HOST PORT --server-pid PID [--server-pid PID2] [--conns 10000] [--users 100]

The RSS of a server is that of its process and all its descendants (worker processes); with
several --server-pid (a proxy front node and its backend) each is printed, then their sum.
Raise the file limit first (``ulimit -n 30000``) — the client and server each hold N sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time


def _rss_kib(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(root: int) -> float:
    """RSS of ``root`` and its descendants, MiB."""
    parents: dict[str, str] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parents[pid] = f.read().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue

    def descends(pid: str) -> bool:
        for _ in range(64):
            if pid == str(root):
                return True
            if pid not in parents:
                return False
            pid = parents[pid]
        return False

    return sum(_rss_kib(pid) for pid in parents if descends(pid)) / 1024


async def one(host: str, port: int, user: str, ready: list[int], hold: asyncio.Event) -> None:
    r, w = await asyncio.open_connection(host, port)
    await r.readline()
    w.write(f'a LOGIN "{user}" "pw"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
    while True:
        line = await r.readline()
        if not line:
            return
        if line.startswith(b"+ "):
            break
        if line[:2] in (b"a ", b"b ", b"c ") and not line[2:].startswith(b"OK"):
            w.close()  # refused (a proxy's NO [UNAVAILABLE], a limit): an error, not a wait
            raise ConnectionError(line.decode(errors="replace").strip())
    ready.append(1)
    await hold.wait()
    w.write(b"DONE\r\nd LOGOUT\r\n")
    await w.drain()
    w.close()


async def main_async(a: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.conns + 1000)), hard))
    before = [rss_mib(pid) for pid in a.server_pid]
    ready: list[int] = []
    hold = asyncio.Event()
    t0 = time.perf_counter()
    tasks = []
    for i in range(a.conns):
        tasks.append(asyncio.create_task(one(a.host, a.port, f"u{i % a.users}@bench.test", ready, hold)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)
    while len(ready) < a.conns and time.perf_counter() - t0 < a.timeout:
        await asyncio.sleep(0.5)
        if any(t.done() and t.exception() for t in tasks):
            break
    errors = [t.exception() for t in tasks if t.done() and t.exception()]
    during = [rss_mib(pid) for pid in a.server_pid]
    print(f"idle sessions={len(ready)}/{a.conns} in {time.perf_counter() - t0:.1f}s errors={len(errors)}")
    rows = list(zip(map(str, a.server_pid), before, during, strict=True))
    if len(rows) > 1:
        rows.append(("all", sum(before), sum(during)))
    for pid, b, d in rows:
        per = (d - b) * 1024 / max(1, len(ready))
        print(f"  server {pid}: RSS before={b:.0f} MiB with-idlers={d:.0f} MiB (+{per:.1f} KiB/session, "
              f"{1024 * 1024 / per if per > 0 else 0:,.0f} sessions/GiB)")
    for e in errors[:3]:
        print("  error:", repr(e)[:200])
    hold.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--server-pid", type=int, action="append", required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=300)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
