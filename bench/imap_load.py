#!/usr/bin/env python3
"""IMAP load driver: N concurrent clients doing a mix of SELECT, FETCH (flags, headers, bodies),
STORE, SEARCH, APPEND, EXPUNGE and (in the ``login`` mix) LOGOUT/LOGIN every ~10 commands.
Works against any IMAP server (pymailsrv, Dovecot on 127.0.0.1:1143).

    bench/imap_load.py HOST PORT [--clients 10] [--seconds 10] [--mix long|login]
        [--users 10] [--server-pid PID ...] [--prefill BASE --per-user 200]

Prints operations/second (total and per kind), latency percentiles and the CPU seconds used by
the server's process tree (``--server-pid``; children included, so Dovecot's imap processes count).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import socket
import statistics
import sys
import time
from collections import defaultdict

HZ = os.sysconf("SC_CLK_TCK")
_LIT = re.compile(rb"\{(\d+)\}\r\n$")


def tree_cpu(roots: list[int]) -> float:
    """utime+stime (+ waited-for children) of the process trees under ``roots``, in seconds."""
    procs: dict[int, tuple[int, int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rfind(")") + 2:].split()
        procs[int(d)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    total = 0
    for pid, (_ppid, t) in procs.items():
        p = pid
        while p > 1:
            if p in roots:
                total += t
                break
            p = procs.get(p, (0, 0))[0]
    return total / HZ


class Client:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.n = 0

    async def connect(self) -> None:
        self.r, self.w = await asyncio.open_connection(self.host, self.port, limit=16 * 1024 * 1024)
        await self.r.readline()

    async def cmd(self, text: str, literal: bytes | None = None) -> list[bytes]:
        self.n += 1
        tag = b"T%d" % self.n
        if literal is not None:
            self.w.write(tag + b" " + text.encode() + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        else:
            self.w.write(tag + b" " + text.encode() + b"\r\n")
        out = []
        while True:
            line = await self.r.readline()
            if not line:
                raise ConnectionError("server closed")
            while (m := _LIT.search(line)) is not None:
                line += await self.r.readexactly(int(m.group(1)))
                line += await self.r.readline()
            out.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text}: {line!r}")
                return out

    def close(self) -> None:
        self.w.close()


MSG = ("From: Bench <bench@example.org>\r\nTo: u@bench.test\r\nSubject: bench message {n}\r\n"
       "Date: Mon, 2 Jan 2023 10:00:00 +0000\r\nMessage-ID: <b{n}@example.org>\r\n\r\n" + "x" * 70 + "\r\n") * 1


async def session(host: str, port: int, user: str, pw: str, mix: str, deadline: float,
                  lat: dict[str, list[float]], rnd: random.Random) -> None:
    c = Client(host, port)

    async def op(kind: str, text: str, literal: bytes | None = None) -> list[bytes]:
        t = time.perf_counter()
        res = await c.cmd(text, literal)
        lat[kind].append(time.perf_counter() - t)
        return res

    async def login() -> int:
        t = time.perf_counter()
        await c.connect()
        await c.cmd(f'LOGIN "{user}" "{pw}"')
        lat["login"].append(time.perf_counter() - t)
        res = await op("select", "SELECT INBOX")
        exists = [int(x.split()[1]) for x in res if x.endswith(b"EXISTS\r\n")]
        return exists[0] if exists else 0

    exists = await login()
    since_login = 0
    while time.monotonic() < deadline:
        if mix == "login" and since_login >= 10:
            await op("logout", "LOGOUT")
            c.close()
            exists = await login()
            since_login = 0
        since_login += 1
        k = rnd.random()
        n = rnd.randint(1, exists) if exists else 0
        if k < 0.15:
            res = await op("select", "SELECT INBOX")
            exists = next((int(x.split()[1]) for x in res if x.endswith(b"EXISTS\r\n")), exists)
        elif k < 0.30 and exists:
            await op("fetch_flags", "FETCH 1:* (UID FLAGS)")
        elif k < 0.45 and exists:
            lo = max(1, n - 20)
            await op("fetch_headers", f"FETCH {lo}:{n} (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])")
        elif k < 0.60 and exists:
            await op("fetch_body", f"FETCH {n} (BODY.PEEK[])")
        elif k < 0.72 and exists:
            sign = rnd.choice("+-")
            await op("store", f"STORE {n} {sign}FLAGS (\\Seen)")
        elif k < 0.82:
            await op("search", "SEARCH UNSEEN")
        elif k < 0.94:
            await op("append", "APPEND INBOX (\\Seen)", MSG.format(n=rnd.randint(0, 10**9)).encode())
        elif exists > 50:
            await op("store", f"STORE {n} +FLAGS.SILENT (\\Deleted)")
            res = await op("expunge", "EXPUNGE")
            exists -= sum(1 for x in res if x.endswith(b"EXPUNGE\r\n"))
        else:
            await op("noop", "NOOP")
            exists = exists  # NOOP may announce EXISTS; SELECT picks it up
    await op("logout", "LOGOUT")
    c.close()


def prefill(base: str, users: int, per_user: int, first: int = 0) -> None:
    """Server-agnostic: write messages straight into BASE/bench.test/u<i>/new (Maildir)."""
    host = socket.gethostname()
    for i in range(first, first + users):
        d = os.path.join(base, "bench.test", f"u{i}")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        for n in range(per_user):
            name = f"{int(time.time())}.P{os.getpid()}Q{n}.{host}"
            body = (MSG.format(n=n).replace("\r\n", "\n") + ("lorem ipsum dolor sit amet\n" * (n % 40))).encode()
            with open(os.path.join(d, "new", name), "wb") as f:
                f.write(body)
    print(f"prefilled {users} users x {per_user} messages under {base}", flush=True)


Latencies = dict[str, list[float]]


async def run_clients(a: argparse.Namespace, clients: range, deadline: float) -> tuple[Latencies, list[str]]:
    lat: dict[str, list[float]] = defaultdict(list)
    tasks = [session(a.host, a.port, f"u{a.first_user + i % a.users}@bench.test", a.password, a.mix, deadline, lat,
                     random.Random(i)) for i in clients]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return lat, [repr(r) for r in results if isinstance(r, BaseException)]


def run_forked(a: argparse.Namespace, deadline: float) -> tuple[Latencies, list[str]]:
    """--procs N: the clients split over N driver processes (a Python driver is the bottleneck
    above ~2,000 ops/s); each child sends back its latencies as JSON."""
    import json

    children = []
    for p in range(a.procs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            lat, errors = asyncio.run(run_clients(a, range(p, a.clients, a.procs), deadline))
            with os.fdopen(w, "w") as out:
                json.dump({"lat": lat, "errors": errors}, out)
            os._exit(0)
        os.close(w)
        children.append((pid, r))
    lat: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    for pid, r in children:
        with os.fdopen(r) as inp:
            got = json.load(inp)
        os.waitpid(pid, 0)
        for kind, values in got["lat"].items():
            lat[kind].extend(values)
        errors += got["errors"]
    return lat, errors


def measure(a: argparse.Namespace) -> None:
    deadline = time.monotonic() + a.seconds
    cpu0 = tree_cpu(a.server_pid) if a.server_pid else 0.0
    t0 = time.perf_counter()
    if a.procs > 1:
        lat, errors = run_forked(a, deadline)
    else:
        lat, errors = asyncio.run(run_clients(a, range(a.clients), deadline))
    elapsed = time.perf_counter() - t0
    cpu = (tree_cpu(a.server_pid) - cpu0) if a.server_pid else 0.0
    total = sum(len(v) for v in lat.values())
    allv = sorted(x for v in lat.values() for x in v)

    def pct(p: float) -> float:
        return allv[min(len(allv) - 1, int(p * len(allv)))] * 1000 if allv else 0.0

    print(f"{a.label or a.host + ':' + str(a.port)} mix={a.mix} clients={a.clients} seconds={elapsed:.1f}")
    print(f"  ops={total} ops/s={total / elapsed:.0f} p50={pct(0.5):.1f}ms p90={pct(0.9):.1f}ms "
          f"p99={pct(0.99):.1f}ms server_cpu={cpu:.2f}s ({cpu / elapsed * 100:.0f}% of one core) "
          f"errors={len(errors)}")
    for kind in sorted(lat):
        v = lat[kind]
        print(f"  {kind:14s} {len(v) / elapsed:7.0f}/s  median {statistics.median(v) * 1000:6.1f}ms")
    for e in errors[:3]:
        print("  error:", e[:200], file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--first-user", type=int, default=0, help="use u<first>..; keeps runs apart")
    ap.add_argument("--password", default="pw")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--mix", choices=("long", "login"), default="long")
    ap.add_argument("--server-pid", type=int, action="append", default=[])
    ap.add_argument("--prefill")
    ap.add_argument("--per-user", type=int, default=200)
    ap.add_argument("--label", default="")
    ap.add_argument("--procs", type=int, default=1, help="driver processes the clients are split over")
    a = ap.parse_args()

    if a.prefill:
        prefill(a.prefill, a.users, a.per_user, a.first_user)
        return
    measure(a)


if __name__ == "__main__":
    main()
