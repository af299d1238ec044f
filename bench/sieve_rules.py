"""Local delivery with a 30-rule Sieve script per user (issue 15's performance case), compared
with the same delivery without Sieve: ``Queue.submit`` from N concurrent producers, every message
to one of u0..u99, each with the script as its active .dovecot.sieve.

    .venv/bin/python bench/sieve_rules.py [--messages 3000] [--size 2048] [--sessions 20] [--no-sieve]
    .venv/bin/python bench/sieve_rules.py --install MAILDIR_BASE   # for shared/anchors/bench-smtp.sh

Prints msgs/s and CPU per message (this process, all threads), the interpreter's own cost per
message, and how many compilations ran (one per user: scripts are cached by file identity).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.queue_local import cpu, message
from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.delivery.agents import AgentTable
from pymailsrv.delivery.maildir import MaildirAgent
from pymailsrv.delivery.router import DirectoryRouter
from pymailsrv.delivery.sieve_filter import SieveFilter
from pymailsrv.queue.base import Envelope, Recipient
from pymailsrv.queue.manager import QueueManager
from pymailsrv.queue.spool import FileSpool
from pymailsrv.sieve import compile_script
from pymailsrv.sieve.interpreter import Context, run_script
from pymailsrv.sieve.message import Envelope as SieveEnvelope
from pymailsrv.sieve.message import SieveMessage


def thirty_rules() -> str:
    """Thirty rules as users write them: senders, lists, subjects, a size, flags; none files a
    bench message, so each one runs all thirty tests and the implicit keep stores it into INBOX
    (where shared/anchors/bench-smtp.sh counts deliveries)."""
    rules = ['require ["fileinto", "imap4flags", "mailbox", "variables", "relational",'
             ' "comparator-i;ascii-numeric", "body", "envelope", "subaddress"];']
    for i in range(8):
        rules.append(f'if address :domain :is "from" "vendor{i}.example" {{ fileinto :create "Vendors.v{i}"; stop; }}')
    for i in range(8):
        rules.append(f'if header :contains "list-id" "list{i}.example.org" {{ fileinto :create "Lists.l{i}"; stop; }}')
    for i in range(6):
        rules.append(f'if header :matches "subject" "*[ticket-{i}*]*" {{ addflag "\\\\Flagged"; '
                     f'fileinto :create "Tickets"; stop; }}')
    rules += [
        'if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "8" { fileinto "Junk"; stop; }',
        'if size :over 10M { fileinto :create "Large"; stop; }',
        'if exists "x-newsletter" { fileinto :create "News"; stop; }',
        'if envelope :detail "to" "shop" { fileinto :create "Shopping"; stop; }',
        'if anyof (header :contains "subject" "invoice", header :contains "subject" "receipt") '
        '{ fileinto :create "Finance"; stop; }',
        'if address :localpart :is "from" "noreply" { addflag "\\\\Seen"; }',
        'if header :is "x-priority" "1" { addflag "\\\\Flagged"; }',
        'if header :matches "subject" "bench *" { set "n" "${1}"; }',
    ]
    assert len(rules) == 31
    return "\n".join(rules) + "\n"


def install(base: str, script: str) -> None:
    """The script as the active one of u0..u99@bench.test under a Maildir base (Dovecot's layout:
    sieve/rules.sieve and the .dovecot.sieve link), e.g. before shared/anchors/bench-smtp.sh
    runs against ``pymailsrv serve``."""
    for u in range(100):
        home = f"{base}/bench.test/u{u}"
        os.makedirs(f"{home}/sieve", exist_ok=True)
        with open(f"{home}/sieve/rules.sieve", "w") as f:
            f.write(script)
        link = f"{home}/.dovecot.sieve"
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink("sieve/rules.sieve", link)


def interpreter_cost(script: str, body: bytes, n: int = 2000) -> float:
    compiled = compile_script(script)
    t0 = time.process_time()
    for _ in range(n):
        result = run_script(compiled, SieveMessage.parse(body), Context(SieveEnvelope("s@far.test", "u1@bench.test")))
    assert result.describe() == ["store INBOX"], result.describe()
    return (time.process_time() - t0) / n


async def run(args: argparse.Namespace) -> None:
    from pymailsrv.store.maildir import MaildirStore

    script = thirty_rules()
    with tempfile.TemporaryDirectory() as tmp:
        base = f"{tmp}/vmail"
        settings = Settings({"data_directory": tmp, "queue_directory": f"{tmp}/q", "myhostname": "bench.test",
                             "virtual_mailbox_base": base})
        directory = MemoryDirectory(base)
        directory.add_domain("bench.test")
        for u in range(100):
            directory.add_mailbox(f"u{u}@bench.test", maildir=f"bench.test/u{u}/")
        install(base, script)
        store = MaildirStore(base, "bench.test")
        sieve = None if args.no_sieve else SieveFilter(settings)
        clock = SystemClock()
        manager = QueueManager(settings, FileSpool(f"{tmp}/q", clock), DirectoryRouter(settings, directory),
                               AgentTable(MaildirAgent(settings, directory, store, sieve)), clock)
        if sieve is not None:
            sieve.attach(manager)
        await manager.start()
        bodies = [message(i, args.size) for i in range(200)]
        counter = iter(range(args.messages))

        async def producer() -> None:
            for i in counter:
                await manager.submit(Envelope("s@far.test", [Recipient(f"u{i % 100}@bench.test")]), bodies[i % 200])

        c0, t0 = cpu(), time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(args.sessions)))
        while manager.entries:
            await asyncio.sleep(0.01)
        elapsed, used = time.perf_counter() - t0, cpu() - c0
        await manager.stop()
        delivered = sum(len(os.listdir(f"{base}/bench.test/u{u}/new")) for u in range(100))
    n = args.messages
    mode = "without Sieve" if args.no_sieve else "30-rule Sieve script"
    print(f"local delivery, {mode}: {n} msgs x {args.size} B, {args.sessions} producers, 100 mailboxes: "
          f"{elapsed:.2f} s, {n / elapsed:.0f} msgs/s, {used / n * 1000:.2f} ms CPU/msg, {delivered} filed"
          + ("" if sieve is None else f", {sieve.cache.compiled} compilations"))
    if not args.no_sieve:
        cost = interpreter_cost(script, bodies[1].replace(b"\r\n", b"\n"))
        print(f"interpreter alone (parse the message, run 30 rules): {cost * 1000:.3f} ms CPU/msg")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--no-sieve", action="store_true")
    p.add_argument("--install", metavar="MAILDIR_BASE",
                   help="only install the script for u0..u99@bench.test under this Maildir base")
    args = p.parse_args()
    if args.install:
        install(args.install, thirty_rules())
        return
    if not 1 <= args.messages <= 200_000:
        raise SystemExit("--messages out of range")
    logging.getLogger("pymailsrv").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
