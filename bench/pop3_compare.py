#!/usr/bin/env python3
"""POP3 download benchmark: pymailsrv against Dovecot on the same Maildirs, interleaved (A B A B).

usage: pop3_compare.py [--base /var/lab/postfix-vmail] [--users 10] [--first-user 20] [--per-user 1000]
                       [--rounds 3] [--procs 2] [--store maildir|memory] [--prefill]
                       [--dovecot-port 1110] [--mbox FILE]

Runs the client of ../shared/anchors/pop3-bench.py beside the repository ($POP3_ANCHOR to use
another copy) (STAT, LIST, UIDL, RETR every message,
QUIT; no DELE; threads spread over --procs processes) as users u<first>..u<first+users-1> (the
lab's u0.. are shared with other benchmarks, hence an offset) against a pymailsrv POP3 server
started here (bench/pop3_server.py, its own process) and against Dovecot (start it first:
../shared/anchors/dovecot-setup.sh). Dovecot indexes first; files our server (root) writes in
the Maildirs are given back to vmail afterwards, so Dovecot (mail_uid vmail) can read them. ``--prefill`` first writes
--per-user messages from --mbox into each user's Maildir. Prints one SUMMARY line per server and
the server's CPU seconds. Bounded: every step has a timeout; the server is always stopped.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHOR = os.environ.get("POP3_ANCHOR", os.path.join(HERE, "..", "..", "shared", "anchors", "pop3-bench.py"))
CPU_ACCOUNT = os.path.join(os.path.dirname(ANCHOR), "cpu-account.py")


def _anchor():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("pop3_anchor", ANCHOR)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _worker(args: tuple[int, list[int], float]) -> tuple[list[dict[str, object]], float]:
    port, ids, deadline = args
    return _anchor()._proc_worker(("127.0.0.1", port, ids, deadline))  # type: ignore[no-any-return]


def run_rep(port: int, a: argparse.Namespace, pool) -> str:  # type: ignore[no-untyped-def]
    """One rep of the anchor's client over users u<first>.. (its ``run_rep`` with an offset)."""
    ids = list(range(a.first_user, a.first_user + a.users))
    deadline = time.time() + 200
    t0 = time.perf_counter()
    res = pool.map(_worker, [(port, ids[i::a.procs], deadline) for i in range(a.procs)])
    wall = time.perf_counter() - t0
    out = [r for o, _ in res for r in o]
    msgs = sum(int(r["msgs"]) for r in out)  # type: ignore[call-overload]
    size = sum(int(r["bytes"]) for r in out)  # type: ignore[call-overload]
    errors = [r["err"] for r in out if r["err"]]
    return (f"rep 1: {len(out)} sessions, {msgs} msgs, {size / 2**20:.1f} MiB in {wall:.2f}s -> "
            f"{msgs / wall:.0f} msg/s, {size / wall / 2**20:.1f} MiB/s; client cpu "
            f"{sum(c for _, c in res):.2f}s; errors={len(errors)} {errors[:2]}")


def bench(port: int, a: argparse.Namespace, label: str, server_pid: int, pool) -> str:  # type: ignore[no-untyped-def]
    """One rep; appends the server's CPU seconds (its process tree, from the anchors'
    cpu-account.py) to the printed line."""
    fd, snap = tempfile.mkstemp(prefix="pop3-compare-", suffix=".json")
    os.close(fd)
    subprocess.run([sys.executable, CPU_ACCOUNT, "snap", snap], check=True, timeout=30)
    line = run_rep(port, a, pool)
    cpu = subprocess.run([sys.executable, CPU_ACCOUNT, "diff", snap, str(server_pid)], capture_output=True,
                         text=True, timeout=30).stdout.strip()
    os.unlink(snap)
    m = re.search(r"ours=([\d.]+)", cpu)
    msgs = re.search(r"(\d+) msgs", line)
    if m and msgs and int(msgs.group(1)):
        line += f"; server cpu {float(m.group(1)):.2f}s = {float(m.group(1)) * 1e6 / int(msgs.group(1)):.0f} us/msg"
    print(f"{label:10s} {line} [{cpu}]", flush=True)
    return line


def give_back(base: str, ids: range) -> None:
    """Files our server (running as root) created in the Maildirs go to their owner, vmail."""
    import pwd

    try:
        pw = pwd.getpwnam("vmail")
    except KeyError:
        return
    for u in ids:
        for root, dirs, files in os.walk(os.path.join(base, "bench.test", f"u{u}")):
            for x in dirs + files:
                path = os.path.join(root, x)
                if os.lstat(path).st_uid != pw.pw_uid:
                    os.lchown(path, pw.pw_uid, pw.pw_gid)


def prefill(base: str, ids: list[int], per_user: int, mbox_path: str) -> None:
    """The anchor's --prefill for users ``ids``: exactly per_user messages in new/, owned by vmail."""
    import mailbox
    import pwd
    import shutil
    import socket

    msgs = [m.as_bytes().replace(b"\r\n", b"\n") for m in mailbox.mbox(mbox_path)]
    host = socket.gethostname()
    for u in ids:
        md = os.path.join(base, "bench.test", f"u{u}")
        if os.path.isdir(md):
            shutil.rmtree(md)
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub))
        now = int(time.time())
        for i in range(per_user):
            name = f"{now}.M{i}P{os.getpid()}Q{u}.{host}"
            with open(os.path.join(md, "tmp", name), "wb") as f:
                f.write(msgs[(u * 7 + i) % len(msgs)])
            os.rename(os.path.join(md, "tmp", name), os.path.join(md, "new", name))
        try:
            pw = pwd.getpwnam("vmail")
        except KeyError:
            continue
        for root, dirs, files in os.walk(md):
            for x in dirs + files:
                os.chown(os.path.join(root, x), pw.pw_uid, pw.pw_gid)
        os.chown(md, pw.pw_uid, pw.pw_gid)
    print(f"prefilled users u{ids[0]}..u{ids[-1]} x {per_user} messages under {base}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="/var/lab/postfix-vmail")
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--first-user", type=int, default=20)
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
    if not (1 <= a.rounds <= 10 and 1 <= a.users <= 50 and 0 <= a.first_user <= 99 - a.users + 1
            and 1 <= a.procs <= 8):
        raise SystemExit("rounds/users/first-user/procs out of range")
    if a.prefill:
        prefill(a.base, list(range(a.first_user, a.first_user + a.users)), a.per_user, a.mbox)
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "pop3_server.py"), "--base", a.base,
                               "--users", str(a.users), "--first-user", str(a.first_user), "--store", a.store,
                               "--port", str(a.port), "--seconds", "1800"], stdout=subprocess.PIPE, text=True)
    results: dict[str, list[tuple[float, float]]] = {"pymailsrv": [], "dovecot": []}
    pool = multiprocessing.Pool(a.procs)
    try:
        assert server.stdout is not None
        for line in server.stdout:
            print("server:", line.rstrip(), flush=True)
            if "listening" in line:
                break
        with open(a.dovecot_pidfile) as fh:
            dovecot_pid = int(fh.read().strip())
        # both read the files once (page cache, indexes); Dovecot first, so the dovecot-uidlist
        # files are its own (vmail) and ours only reads them
        bench(a.dovecot_port, a, "warmup", dovecot_pid, pool)
        bench(a.port, a, "warmup", server.pid, pool)
        for _ in range(a.rounds):
            for label, port, pid in (("pymailsrv", a.port, server.pid), ("dovecot", a.dovecot_port, dovecot_pid)):
                m = re.search(r"-> (\d+) msg/s, ([\d.]+) MiB/s", bench(port, a, label, pid, pool))
                if m:
                    results[label].append((float(m.group(1)), float(m.group(2))))
                time.sleep(1)
    finally:
        pool.close()
        server.send_signal(signal.SIGTERM)
        try:
            rest, _ = server.communicate(timeout=30)
            print("server:", rest.strip().replace("\n", "\nserver: "))
        except subprocess.TimeoutExpired:
            server.kill()
        give_back(a.base, range(a.first_user, a.first_user + a.users))
    for label, rs in results.items():
        if rs:
            rates = sorted(r[0] for r in rs)
            mibs = sorted(r[1] for r in rs)
            print(f"SUMMARY {label}: msgs/s median {rates[len(rates) // 2]:.0f} (min {rates[0]:.0f}, "
                  f"max {rates[-1]:.0f}); MiB/s median {mibs[len(mibs) // 2]:.1f}")


if __name__ == "__main__":
    main()
