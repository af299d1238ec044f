#!/usr/bin/env python3
"""POP3 download benchmark: pymailsrv against Dovecot on the same Maildirs, interleaved (A B A B).

usage: pop3_compare.py [--base /var/lab/postfix-vmail] [--users 10] [--per-user 1000]
                       [--rounds 3] [--procs 2] [--store maildir|memory] [--prefill]
                       [--dovecot-port 1110] [--mbox FILE]

Runs /work/shared/anchors/pop3-bench.py (STAT, LIST, UIDL, RETR every message, QUIT; no DELE)
against a pymailsrv POP3 server started here (bench/pop3_server.py, its own process) and against
Dovecot (start it first: /work/shared/anchors/dovecot-setup.sh). ``--prefill`` first writes
--per-user messages from --mbox into each user's Maildir. Prints one SUMMARY line per server and
the server's CPU seconds. Bounded: every step has a timeout; the server is always stopped.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHOR = os.environ.get("POP3_ANCHOR", "/work/shared/anchors/pop3-bench.py")
CPU_ACCOUNT = os.path.join(os.path.dirname(ANCHOR), "cpu-account.py")


def bench(port: int, a: argparse.Namespace, label: str, server_pid: int) -> str:
    """One rep of the anchor client; appends the server's CPU seconds (its process tree, from
    /work/shared/anchors/cpu-account.py) to the printed line."""
    snap = f"/tmp/pop3-compare-{os.getpid()}.json"
    subprocess.run([sys.executable, CPU_ACCOUNT, "snap", snap], check=True, timeout=30)
    cmd = [sys.executable, ANCHOR, "127.0.0.1", str(port), "--users", str(a.users), "--reps", "1",
           "--warmup", "0", "--procs", str(a.procs), "--max-seconds", "200", "--label", label]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    cpu = subprocess.run([sys.executable, CPU_ACCOUNT, "diff", snap, str(server_pid)], capture_output=True,
                         text=True, timeout=30).stdout.strip()
    os.unlink(snap)
    line = next((x for x in out.stdout.splitlines() if x.startswith("rep 1")), out.stdout + out.stderr)
    m = re.search(r"ours=([\d.]+)", cpu)
    msgs = re.search(r"(\d+) msgs", line)
    if m and msgs and int(msgs.group(1)):
        line += f"; server cpu {float(m.group(1)):.2f}s = {float(m.group(1)) * 1e6 / int(msgs.group(1)):.0f} us/msg"
    print(f"{label:10s} {line} [{cpu}]", flush=True)
    return line


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="/var/lab/postfix-vmail")
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--per-user", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--store", choices=("maildir", "memory"), default="maildir")
    ap.add_argument("--prefill", action="store_true")
    ap.add_argument("--mbox", default="/var/lab/data/bench.mbox")
    ap.add_argument("--dovecot-port", type=int, default=1110)
    ap.add_argument("--port", type=int, default=1111)
    ap.add_argument("--dovecot-pidfile", default="/run/lab-dovecot/master.pid")
    a = ap.parse_args()
    if not 1 <= a.rounds <= 10:
        raise SystemExit("rounds out of range")
    if a.prefill:
        subprocess.run([sys.executable, "-c", (
            "import importlib.util,sys; s=importlib.util.spec_from_file_location('pb', sys.argv[1]);"
            "m=importlib.util.module_from_spec(s); s.loader.exec_module(m);"
            "m.prefill(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])"),
            ANCHOR, a.base, str(a.users), str(a.per_user), a.mbox], check=True, timeout=600)
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "pop3_server.py"), "--base", a.base,
                               "--users", str(a.users), "--store", a.store, "--port", str(a.port),
                               "--seconds", "1800"], stdout=subprocess.PIPE, text=True)
    results: dict[str, list[tuple[float, float]]] = {"pymailsrv": [], "dovecot": []}
    try:
        assert server.stdout is not None
        for line in server.stdout:
            print("server:", line.rstrip(), flush=True)
            if "listening" in line:
                break
        with open(a.dovecot_pidfile) as fh:
            dovecot_pid = int(fh.read().strip())
        bench(a.port, a, "warmup", server.pid)  # both servers read the files once (page cache, indexes)
        bench(a.dovecot_port, a, "warmup", dovecot_pid)
        for _ in range(a.rounds):
            for label, port, pid in (("pymailsrv", a.port, server.pid), ("dovecot", a.dovecot_port, dovecot_pid)):
                m = re.search(r"-> (\d+) msg/s, ([\d.]+) MiB/s", bench(port, a, label, pid))
                if m:
                    results[label].append((float(m.group(1)), float(m.group(2))))
                time.sleep(1)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            rest, _ = server.communicate(timeout=30)
            print("server:", rest.strip().replace("\n", "\nserver: "))
        except subprocess.TimeoutExpired:
            server.kill()
    for label, rs in results.items():
        if rs:
            rates = sorted(r[0] for r in rs)
            mibs = sorted(r[1] for r in rs)
            print(f"SUMMARY {label}: msgs/s median {rates[len(rates) // 2]:.0f} (min {rates[0]:.0f}, "
                  f"max {rates[-1]:.0f}); MiB/s median {mibs[len(mibs) // 2]:.1f}")


if __name__ == "__main__":
    main()
