"""Postfix → pymailsrv LMTP vs Postfix → Dovecot LMTP, same Postfix, same run, interleaved (issue 16).

One test-owned Postfix (tests/dovecot_services/postfix_peer.py: its own config directory, queue
and loopback port) routes domain a.test to pymailsrv's ``lmtp_listen`` and b.test to Dovecot's
lmtp (a Dovecot of this script's own configuration, LMTP only), both ``lmtp:inet`` on loopback.
Postfix's ``smtp-source`` injects MSGS messages of SIZE bytes in SESSIONS sessions, recipients
spread over u0..u99 of one domain (``-N``: a sequence number before the local part, folded onto
the 100 mailboxes by a regexp virtual_alias_maps), each domain in turn (A B B A A B …). A round's
figure is MSGS divided by the time from the start of the injection until every message is a file
in the Maildirs: the delivery rate through Postfix, both LMTP servers behind the same queue
manager. With it the CPU per message of the LMTP server's processes (pymailsrv's one process;
Dovecot's master and every child, lmtp and auth, exited ones included) and of Postfix. At the end
the header block of one delivered message from each side: both start Return-Path, Delivered-To,
Received (… with LMTP).

    sudo .venv/bin/python bench/lmtp_vs_dovecot.py --msgs 5000 --rounds 2     # smoke: --msgs 200

Ports (loopback): Postfix's smtpd PORT, pymailsrv's LMTP PORT+1, Dovecot's LMTP PORT+2 (--port,
default 2573). Needs root, Debian's postfix and dovecot-lmtpd packages, and a ``vmail`` user for
Dovecot's deliveries (the anchors' lab-common.sh creates one). Dovecot runs with its default
``mail_fsync = optimized`` (each delivered file fsynced), pymailsrv with its own durable writes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.server_process import ServerProcess  # noqa: E402
from tests.dovecot_services.postfix_peer import PostfixPeer, postfix_available, scratch_directory  # noqa: E402

USERS = 100
DOVECOT_CONF = """\
protocols = lmtp
listen = 127.0.0.1
base_dir = {base}/dovecot-run
instance_name = pymailsrv-bench-{port}
log_path = {base}/dovecot.log
ssl = no
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_uid = {uid}
mail_gid = {gid}
mail_location = maildir:{base}/dvmail/%d/%n
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/dvmail/%d/%n allow_all_users=yes
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""
# smtp-source -N: "<seq>u@dom" → u0..u99@dom by the last two digits of the sequence number
FOLD = """\
/^[0-9]*0([0-9])u@(.*)$/ u$1@$2
/^[0-9]*([1-9][0-9])u@(.*)$/ u$1@$2
/^([0-9])u@(.*)$/ u$1@$2
"""


def seed_pymailsrv(url: str, users: int) -> None:
    from pymailsrv.auth.schemes import hash_password
    from pymailsrv.db import schema

    hashed = hash_password("pw", "SHA512-CRYPT")
    rows = {"domain": [{"domain": "a.test"}],
            "mailbox": [{"username": f"u{i}@a.test", "password": hashed, "maildir": f"a.test/u{i}/",
                         "local_part": f"u{i}", "domain": "a.test", "active": True} for i in range(users)]}

    async def run() -> None:
        await schema.create_schema(url)
        await schema.seed(url, rows)

    asyncio.run(run())


def count(domain_dir: Path) -> int:
    """Messages delivered into the domain's Maildirs (new/ and cur/ of every mailbox)."""
    n = 0
    for i in range(USERS):
        for sub in ("new", "cur"):
            try:
                n += len(os.listdir(domain_dir / f"u{i}" / sub))
            except FileNotFoundError:
                pass
    return n


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its descendants, exited children included (cutime/cstime)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = sum(int(f) for f in fields[11:15])
        stats[int(entry)] = (int(fields[1]), ticks / os.sysconf("SC_CLK_TCK"))

    def descends(pid: int) -> bool:
        for _ in range(64):
            if pid == root:
                return True
            if pid not in stats or pid <= 1:
                return False
            pid = stats[pid][0]
        return False

    # a child that exited is in its parent's cutime; a live one is counted on its own
    return sum(cpu for pid, (_, cpu) in stats.items() if descends(pid))


def master_pid(pidfile: Path) -> int:
    return int(pidfile.read_text().split()[0])


def run_round(postfix: PostfixPeer, domain: str, domain_dir: Path, args: argparse.Namespace,
              roots: dict[str, int]) -> tuple[float, float, dict[str, float]]:
    """(msg/s until all delivered, seconds smtp-source took, CPU seconds per process tree)."""
    before = count(domain_dir)
    cpu0 = {name: tree_cpu(pid) for name, pid in roots.items()}
    start = time.monotonic()
    subprocess.run(["smtp-source", "-s", str(args.sessions), "-m", str(args.msgs), "-l", str(args.size),
                    "-f", "bench@remote.test", "-N", "-t", f"u@{domain}", f"127.0.0.1:{postfix.port}"],
                   check=True, stdout=subprocess.DEVNULL)
    injected = time.monotonic() - start
    deadline = start + args.timeout
    while count(domain_dir) < before + args.msgs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{domain}: {count(domain_dir) - before} of {args.msgs} delivered")
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    return args.msgs / elapsed, injected, {name: tree_cpu(pid) - cpu0[name] for name, pid in roots.items()}


def first_headers(domain_dir: Path) -> str:
    new = domain_dir / "u1" / "new"
    name = sorted(os.listdir(new))[0]
    return (new / name).read_bytes().split(b"\n\n", 1)[0].decode(errors="replace")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--msgs", type=int, default=5000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=200, help="messages to each side before the rounds")
    ap.add_argument("--port", type=int, default=2573, help="Postfix; LMTP: pymailsrv +1, Dovecot +2")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    why = postfix_available() or ("" if shutil.which("dovecot") and os.path.exists("/usr/lib/dovecot/lmtp")
                                  else "Dovecot's lmtp is not installed (dovecot-lmtpd)")
    if why:
        print(f"skipped: {why}", file=sys.stderr)
        return 2
    os.chdir(ROOT)  # the server's ``python -m pymailsrv`` imports this checkout
    vmail = pwd.getpwnam("vmail")
    base = scratch_directory("pymailsrv-lmtp-bench-")
    url = f"sqlite+aiosqlite:///{base}/pymailsrv.db"
    seed_pymailsrv(url, USERS)
    py_port, dv_port = args.port + 1, args.port + 2
    conf = base / "pymailsrv.conf"
    conf.write_text(f"myhostname = mx.a.test\ndata_directory = {base}/data\ndatabase_url = {url}\n"
                    f"virtual_mailbox_base = {base}/vmail\nworker_processes = 0\n"
                    f"lmtp_listen = 127.0.0.1:{py_port}\nlmtp_rcpt_check_quota = no\n"
                    )
    (base / "dvmail").mkdir()
    shutil.chown(base / "dvmail", vmail.pw_uid, vmail.pw_gid)
    dconf = base / "dovecot.conf"
    dconf.write_text(DOVECOT_CONF.format(base=base, port=dv_port, uid=vmail.pw_uid, gid=vmail.pw_gid))
    server = postfix = None
    try:
        server = ServerProcess(conf).start(expect=("lmtp",))
        subprocess.run(["dovecot", "-c", str(dconf)], check=True)
        (base / "transport").write_text(f"a.test lmtp:inet:127.0.0.1:{py_port}\n"
                                        f"b.test lmtp:inet:127.0.0.1:{dv_port}\n")
        (base / "fold.regexp").write_text(FOLD)
        postfix = PostfixPeer(base, {"virtual_mailbox_domains": "a.test b.test", "virtual_mailbox_maps": "static:x",
                                     "virtual_alias_maps": f"regexp:{base}/fold.regexp",
                                     "transport_maps": f"texthash:{base}/transport",
                                     "smtpd_recipient_restrictions": "permit_mynetworks, reject"},
                              port=args.port).start()
        assert server.proc is not None
        roots = {"pymailsrv": server.proc.pid, "dovecot": master_pid(base / "dovecot-run/master.pid"),
                 "postfix": master_pid(base / "postfix-queue/pid/master.pid")}
        sides = {"pymailsrv": ("a.test", base / "vmail/a.test"), "dovecot": ("b.test", base / "dvmail/b.test")}
        if args.warmup:
            warm = argparse.Namespace(**{**vars(args), "msgs": args.warmup})
            for domain, ddir in sides.values():
                run_round(postfix, domain, ddir, warm, {})
        print(f"# {args.msgs} msgs x {args.size} B, {args.sessions} sessions over {USERS} mailboxes, "
              f"Postfix → LMTP, {args.rounds} rounds (after {args.warmup} to each)", flush=True)
        results: dict[str, list[float]] = {name: [] for name in sides}
        cpus: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for name in order:
                domain, ddir = sides[name]
                rate, injected, cpu = run_round(postfix, domain, ddir, args, roots)
                results[name].append(rate)
                cpus[name].append(1000 * cpu[name] / args.msgs)
                print(f"round {r + 1} {name:9s} {rate:7.1f} msg/s delivered (injected in {injected:5.1f} s); "
                      f"CPU per message: {name} {1000 * cpu[name] / args.msgs:5.2f} ms, Postfix "
                      f"{1000 * cpu['postfix'] / args.msgs:5.2f} ms", flush=True)
        for name, rates in results.items():
            print(f"{name:9s} median {statistics.median(rates):7.1f} msg/s, "
                  f"{statistics.median(cpus[name]):5.2f} ms CPU per message")
        p, d = results["pymailsrv"], results["dovecot"]
        print(f"ratio pymailsrv/dovecot {sum(p) / sum(d):.2f} (msg/s); "
              f"CPU per message {sum(cpus['pymailsrv']) / sum(cpus['dovecot']):.2f}")
        for name, (_, ddir) in sides.items():
            print(f"--- {name}: first header lines\n{first_headers(ddir)}")
    finally:
        if postfix is not None:
            postfix.stop()
        subprocess.run(["doveadm", "-c", str(dconf), "stop"], capture_output=True)
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
