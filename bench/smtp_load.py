"""SMTP acceptance benchmark for pymailsrv's listener (not a test).

Starts the SMTP server in a child process (so its CPU and RSS are measured alone), drives it with
N parallel sessions sending M messages of SIZE bytes (one connection per message, like Postfix's
smtp-source), and prints accepted msgs/s, p50/p99 time from connect to the final 250, server CPU
seconds per message and the server's peak RSS.

    python bench/smtp_load.py --sessions 20 --messages 5000 --size 2048
    python bench/smtp_load.py --driver smtp-source --sessions 20 --messages 20000 --size 2048
    python bench/smtp_load.py --target 127.0.0.1:2525 ...   # any server (no CPU/RSS figures)
    python bench/smtp_load.py --milters unix:/run/opendkim/opendkim.sock ...  # through a milter
    python bench/smtp_load.py --queue spool --sieve ...      # users with a 30-rule Sieve script

``--queue null`` (default) discards accepted mail (with a permit-all policy unless ``--policy
real``); ``--queue spool`` runs the real stack: SQLite PostfixAdmin database with bench.test
u0..u99, restriction engine, queue manager, fsynced spool and Maildir delivery (``--spool-dir``,
default a temp dir). Acceptance is measured; delivery continues in the background.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- server side --------------------------------------------------------------------------------
class NullQueue:
    def __init__(self) -> None:
        self.n = 0

    def new_queue_id(self):  # type: ignore[no-untyped-def]
        self.n += 1
        return f"B{self.n:09X}"

    async def submit(self, envelope, content, *, queue_id=None):  # type: ignore[no-untyped-def]
        return queue_id or self.new_queue_id()


class PermitAll:
    async def check(self, stage, state):  # type: ignore[no-untyped-def]
        from pymailsrv.policy.base import Decision

        return Decision("dunno")


async def _serve(args: argparse.Namespace) -> None:
    from pymailsrv.config.settings import Settings
    from pymailsrv.smtp.server import start_servers

    settings = Settings({"smtpd_listen": "127.0.0.1:0", "myhostname": "mx.bench.test",
                         "mynetworks": "127.0.0.0/8", "data_directory": args.spool_dir,
                         "smtpd_client_connection_count_limit": "0", "dns_nameservers": "127.0.0.1:9",
                         "smtpd_milters": args.milters})
    queue = await _make_queue(args, settings)
    restrictions = PermitAll()
    if args.policy == "real" or args.queue == "spool":
        restrictions = _real_policy(settings)
    servers = await start_servers(settings, authenticator=None, restrictions=restrictions, queue=queue)
    print(servers[0].port, flush=True)
    await asyncio.Event().wait()


async def _make_queue(args: argparse.Namespace, settings):  # type: ignore[no-untyped-def]
    """The null queue, or the real stack: SQLite PostfixAdmin db (bench.test, u0..u99), queue
    manager, spool and Maildir delivery under the spool directory."""
    if args.queue == "null":
        return NullQueue()
    from pymailsrv import app
    from pymailsrv.db import schema
    from pymailsrv.db.directory import SqlDirectory
    from pymailsrv.store.maildir import MaildirStore

    url = settings.get_str("database_url")
    await schema.create_schema(url)
    users = [f"u{i}" for i in range(100)]
    await schema.seed(url, {
        "domain": [{"domain": "bench.test"}],
        "mailbox": [{"username": f"{u}@bench.test", "password": "x", "maildir": f"bench.test/{u}/",
                     "local_part": u, "domain": "bench.test", "active": True} for u in users],
        "alias": [{"address": f"{u}@bench.test", "goto": f"{u}@bench.test", "domain": "bench.test",
                   "active": True} for u in users],
    })
    base = settings.get_str("virtual_mailbox_base")
    if args.sieve:  # every user with the 30-rule script of bench/sieve_rules.py (issue 15)
        from bench.sieve_rules import install, thirty_rules

        install(base, thirty_rules())
    directory = SqlDirectory(url, base, "", cache_ttl=settings.get_seconds("directory_cache_ttl"))
    store = MaildirStore(base, "mx.bench.test")
    queue, _stop = await app.start_queue(settings, directory, store)
    _STATE["directory"] = directory
    return queue


_STATE: dict[str, object] = {}


def _real_policy(settings):  # type: ignore[no-untyped-def]
    from pymailsrv.policy.restrictions import RestrictionEngine

    directory = _STATE.get("directory")
    if directory is None:
        from pymailsrv.db.memory import MemoryDirectory

        directory = MemoryDirectory("/nonexistent")
        directory.add_domain("bench.test")
        for i in range(100):
            directory.add_mailbox(f"u{i}@bench.test")
    return RestrictionEngine(settings, directory)


def _proc_cpu(pid: int) -> float:
    user, system = _proc_cpu_split(pid)
    return user + system


def _proc_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _proc_hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# --- driver side --------------------------------------------------------------------------------
def _message(size: int) -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = (line * (size // len(line) + 1))[:size]
    return b"From: <a@client.test>\r\nTo: <u0@bench.test>\r\nSubject: bench\r\n\r\n" + body + b"\r\n.\r\n"


async def _one(host: str, port: int, payload: bytes) -> float:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async def expect(prefix: bytes) -> None:
            while True:
                line = await reader.readline()
                if not line.startswith(prefix):
                    raise RuntimeError(f"unexpected reply {line!r}")
                if line[3:4] != b"-":
                    return

        await expect(b"220")
        writer.write(b"EHLO client.test\r\n")
        await expect(b"250")
        # RFC 2920 pipelining: MAIL, RCPT, DATA in one write
        writer.write(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<u0@bench.test>\r\nDATA\r\n")
        await expect(b"250")
        await expect(b"250")
        await expect(b"354")
        writer.write(payload)
        await expect(b"250")
        elapsed = time.perf_counter() - t0
        writer.write(b"QUIT\r\n")
        await expect(b"221")
        return elapsed
    finally:
        writer.close()


async def _drive(host: str, port: int, sessions: int, messages: int, size: int) -> list[float]:
    payload = _message(size)
    latencies: list[float] = []
    remaining = messages

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            latencies.append(await _one(host, port, payload))

    await asyncio.gather(*(worker() for _ in range(sessions)))
    return latencies


def _smtp_source(host: str, port: int, sessions: int, messages: int, size: int) -> None:
    exe = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    subprocess.run([exe, "-s", str(sessions), "-m", str(messages), "-l", str(size), "-M", "client.test",
                    "-f", "a@client.test", "-t", "u0@bench.test", f"{host}:{port}"], check=True,
                   stdout=subprocess.DEVNULL, timeout=1800)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--driver", choices=("python", "smtp-source"), default="python")
    p.add_argument("--queue", choices=("null", "spool"), default="null")
    p.add_argument("--policy", choices=("permit", "real"), default="permit")
    p.add_argument("--spool-dir", default="")
    p.add_argument("--target", default="", help="host:port of an already running server")
    p.add_argument("--milters", default="", help="smtpd_milters of the server (e.g. unix:/run/opendkim.sock)")
    p.add_argument("--sieve", action="store_true", help="with --queue spool: each user has a 30-rule Sieve script")
    args = p.parse_args()
    if args.messages > 200000 or args.sessions > 500:
        p.error("bounded: at most 200000 messages and 500 sessions")
    if args.serve:
        asyncio.run(_serve(args))
        return 0
    child = None
    tmp = tempfile.mkdtemp(prefix="smtpbench-")
    try:
        if args.target:
            host, _, port_s = args.target.rpartition(":")
            port = int(port_s)
        else:
            cmd = [sys.executable, __file__, "--serve", "--queue", args.queue, "--policy", args.policy,
                   "--spool-dir", args.spool_dir or tmp, "--milters", args.milters,
                   *(["--sieve"] if args.sieve else [])]
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None
            host, port = "127.0.0.1", int(child.stdout.readline())
        asyncio.run(_drive(host, port, 1, 20, args.size))  # warm-up
        cpu0 = _proc_cpu(child.pid) if child else 0.0
        user0 = _proc_cpu_split(child.pid)[0] if child else 0.0
        t0 = time.perf_counter()
        latencies: list[float] = []
        if args.driver == "python":
            latencies = asyncio.run(_drive(host, port, args.sessions, args.messages, args.size))
        else:
            _smtp_source(host, port, args.sessions, args.messages, args.size)
        wall = time.perf_counter() - t0
        cpu = (_proc_cpu(child.pid) - cpu0) if child else 0.0
        user = (_proc_cpu_split(child.pid)[0] - user0) if child else 0.0
        hwm = _proc_hwm(child.pid) if child else 0
        line = (f"driver={args.driver} sessions={args.sessions} messages={args.messages} size={args.size} "
                f"queue={args.queue}: {args.messages / wall:.0f} msgs/s")
        if latencies:
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            line += f", p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
        if child:
            line += (f", server CPU {cpu / args.messages * 1000:.2f} ms/msg "
                     f"({user / args.messages * 1000:.2f} user), peak RSS {hwm / 2**20:.1f} MiB")
        print(line)
    finally:
        if child:
            child.terminate()
            child.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
