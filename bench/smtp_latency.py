"""Latency of each step of a lone SMTP client sending in sequence, one connection per message (as
smtp-source -s 1 does): connect to greeting, EHLO, MAIL, RCPT, DATA, end of data to the 250, QUIT.
Prints median and 99th percentile per step for each server, in interleaved rounds:

    python bench/smtp_latency.py --messages 500 --rounds 2 postfix=127.0.0.1:2525 pymailsrv=127.0.0.1:2526

With ``LABEL=HOST:PORT@PID`` (or ``@PIDFILE``) the CPU time of that process and its descendants
(utime+stime+cutime+cstime from /proc, Postfix's master for Postfix) per message is printed too.

A raw socket client (no smtplib parsing on the measured path); on one session the client is far
from saturated, so a Python driver does not hide the servers' latency.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

STEPS = ("greeting", "ehlo", "mail", "rcpt", "data", "end-of-data", "quit")


def _reply(sock: socket.socket, buf: bytearray) -> bytes:
    """One whole (possibly multi-line) reply."""
    while True:
        end = buf.find(b"\r\n")
        while end >= 0:
            line = bytes(buf[:end])
            if len(line) < 4 or line[3:4] != b"-":
                del buf[: end + 2]
                return line
            del buf[: end + 2]
            end = buf.find(b"\r\n")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk


def send_one(addr: tuple[str, int], body: bytes, rcpt: str, times: dict[str, list[float]]) -> None:
    buf = bytearray()
    t = time.perf_counter()
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        steps: list[tuple[str, bytes | None, bytes]] = [
            ("greeting", None, b"220"),
            ("ehlo", b"EHLO client.test\r\n", b"250"),
            ("mail", b"MAIL FROM:<sender@client.test>\r\n", b"250"),
            ("rcpt", f"RCPT TO:<{rcpt}>\r\n".encode(), b"250"),
            ("data", b"DATA\r\n", b"354"),
            ("end-of-data", body + b".\r\n", b"250"),
            ("quit", b"QUIT\r\n", b"221"),
        ]
        for name, line, expect in steps:
            if line is not None:
                sock.sendall(line)
            reply = _reply(sock, buf)
            now = time.perf_counter()
            if not reply.startswith(expect):
                raise RuntimeError(f"{name}: {reply!r}")
            times[name].append(now - t)
            t = now
    finally:
        sock.close()


def message(size: int) -> bytes:
    head = b"From: <sender@client.test>\r\nTo: <u0@bench.test>\r\nSubject: latency\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, size // len(line))


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and every process below it (children that ended included)."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
        ticks[int(name)] = sum(int(x) for x in fields[11:15])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total / os.sysconf("SC_CLK_TCK")


def run(label: str, addr: tuple[str, int], n: int, body: bytes, rcpt: str, pid: int = 0) -> None:
    times: dict[str, list[float]] = {s: [] for s in STEPS}
    cpu = tree_cpu(pid) if pid else 0.0
    start = time.perf_counter()
    for _ in range(n):
        send_one(addr, body, rcpt, times)
    wall = time.perf_counter() - start
    cpu = tree_cpu(pid) - cpu if pid else 0.0
    parts = []
    for s in STEPS:
        v = sorted(times[s])
        p99 = v[min(len(v) - 1, int(len(v) * 0.99))]
        parts.append(f"{s} {statistics.median(v) * 1e3:.2f}/{p99 * 1e3:.2f}")
    per = f"  cpu {cpu * 1e3 / n:.2f} ms/msg" if pid else ""
    print(f"{label:12s} {n / wall:7.0f} msg/s{per}  ms median/p99: " + ", ".join(parts), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("servers", nargs="+", help="LABEL=HOST:PORT[@PID|@PIDFILE]")
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--rcpt", default="u0@bench.test")
    args = ap.parse_args()
    body = message(args.size)
    targets = []
    for spec in args.servers:
        label, _, hostport = spec.partition("=")
        hostport, _, pid = hostport.partition("@")
        host, _, port = hostport.rpartition(":")
        if pid and not pid.isdigit():
            with open(pid) as f:
                pid = f.read().split()[0]
        targets.append((label, (host, int(port)), int(pid or 0)))
    for r in range(1, args.rounds + 1):
        for label, addr, root in targets:
            run(f"{label}#{r}", addr, args.messages, body, args.rcpt, root)


if __name__ == "__main__":
    main()
