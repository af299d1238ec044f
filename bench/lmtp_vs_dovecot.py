"""Postfix → pymailsrv LMTP vs Postfix → Dovecot LMTP, same Postfix, same run, interleaved.

One test-owned Postfix (tests/dovecot_services/postfix_peer.py) routes domain a.test to
pymailsrv's LMTP and b.test to Dovecot's (transport_maps, both lmtp:inet on loopback); Postfix's
``smtp-source`` injects MSGS messages of SIZE bytes in SESSIONS sessions to u0@ each domain in
turn (A B A B …); a round's figure is MSGS divided by the time until every message is in the
Maildir (delivery rate through Postfix, both LMTP servers behind the same queue manager), with the
CPU seconds pymailsrv's process used for it. At the end the header block of one delivered message
from each side is printed: both should start Return-Path, Delivered-To, Received (… with LMTP).

    sudo .venv/bin/python bench/lmtp_vs_dovecot.py --msgs 2000 --rounds 2      # a smoke run: --msgs 200

Needs root, Debian's postfix and dovecot-lmtpd packages, and a ``vmail`` user for Dovecot's
deliveries (the anchors' lab-common.sh creates one).
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
from tests.dovecot_services.postfix_peer import PostfixPeer, free_port, postfix_available, scratch_directory  # noqa: E402

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
mail_fsync = always
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


def count(new: Path) -> int:
    try:
        return len(os.listdir(new))
    except FileNotFoundError:
        return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_round(postfix: PostfixPeer, rcpt: str, new: Path, args: argparse.Namespace, pid: int) -> tuple[float, float]:
    before, cpu0 = count(new), cpu_seconds(pid)
    start = time.monotonic()
    subprocess.run(["smtp-source", "-s", str(args.sessions), "-m", str(args.msgs), "-l", str(args.size),
                    "-f", "bench@remote.test", "-t", rcpt, f"127.0.0.1:{postfix.port}"], check=True)
    deadline = start + args.timeout
    while count(new) < before + args.msgs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{rcpt}: {count(new) - before} of {args.msgs} delivered")
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    return args.msgs / elapsed, cpu_seconds(pid) - cpu0


def first_headers(new: Path) -> str:
    name = sorted(os.listdir(new))[0]
    return (new / name).read_bytes().split(b"\n\n", 1)[0].decode(errors="replace")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--msgs", type=int, default=2000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    why = postfix_available() or ("" if shutil.which("dovecot") and os.path.exists("/usr/lib/dovecot/lmtp")
                                  else "Dovecot's lmtp is not installed (dovecot-lmtpd)")
    if why:
        print(f"skipped: {why}", file=sys.stderr)
        return 2
    vmail = pwd.getpwnam("vmail")
    base = scratch_directory("pymailsrv-lmtp-bench-")
    url = f"sqlite+aiosqlite:///{base}/pymailsrv.db"
    seed_pymailsrv(url, 10)
    conf = base / "pymailsrv.conf"
    conf.write_text(f"myhostname = mx.a.test\ndata_directory = {base}/data\ndatabase_url = {url}\n"
                    f"virtual_mailbox_base = {base}/vmail\nworker_processes = 0\nlmtp_listen = 127.0.0.1:0\n"
                    f"lmtp_rcpt_check_quota = no\n")
    dv_port = free_port()
    (base / "dvmail").mkdir()
    shutil.chown(base / "dvmail", vmail.pw_uid, vmail.pw_gid)
    dconf = base / "dovecot.conf"
    dconf.write_text(DOVECOT_CONF.format(base=base, port=dv_port, uid=vmail.pw_uid, gid=vmail.pw_gid))
    server = postfix = None
    try:
        server = ServerProcess(conf).start(expect=("lmtp",))
        subprocess.run(["dovecot", "-c", str(dconf)], check=True)
        (base / "transport").write_text(f"a.test lmtp:inet:127.0.0.1:{server.ports['lmtp']}\n"
                                        f"b.test lmtp:inet:127.0.0.1:{dv_port}\n")
        postfix = PostfixPeer(base, {"virtual_mailbox_domains": "a.test b.test", "virtual_mailbox_maps": "static:x",
                                     "transport_maps": f"texthash:{base}/transport",
                                     "smtpd_recipient_restrictions": "permit_mynetworks, reject"}).start()
        assert server.proc is not None
        sides = {"pymailsrv": ("u0@a.test", base / "vmail/a.test/u0/new"),
                 "dovecot": ("u0@b.test", base / "dvmail/b.test/u0/new")}
        print(f"# {args.msgs} msgs x {args.size} B, {args.sessions} sessions, Postfix → LMTP, {args.rounds} rounds")
        results: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for name in order:
                rcpt, new = sides[name]
                rate, cpu = run_round(postfix, rcpt, new, args, server.proc.pid)
                results[name].append(rate)
                extra = f", pymailsrv CPU {1000 * cpu / args.msgs:.2f} ms/msg" if name == "pymailsrv" else ""
                print(f"round {r + 1} {name:9s} {rate:7.1f} msg/s{extra}", flush=True)
        for name, rates in results.items():
            print(f"{name:9s} median {statistics.median(rates):7.1f} msg/s")
        p, d = results["pymailsrv"], results["dovecot"]
        print(f"ratio pymailsrv/dovecot {sum(p) / sum(d):.2f}")
        for name, (_, new) in sides.items():
            print(f"--- {name}: first header lines\n{first_headers(new)}")
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
