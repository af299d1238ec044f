"""Restriction-engine throughput: RCPT checks per second with a typical MX configuration
(permit_mynetworks, reject_unauth_destination, two hash access maps, a cidr map,
reject_non_fqdn_*, and the default reject_unlisted_recipient) over db's in-memory Directory.

    .venv/bin/python bench/policy_bench.py [N]
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.policy.base import SmtpState
from pymailsrv.policy.dns import Resolver
from pymailsrv.policy.restrictions import RestrictionEngine


async def main(n: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "client_access").write_text("".join(f"10.{i}.0 REJECT\n" for i in range(2000)))
    (tmp / "sender_access").write_text("".join(f"spam{i}.example REJECT\n" for i in range(2000)))
    (tmp / "nets.cidr").write_text("".join(f"172.{i}.0.0/16 REJECT\n" for i in range(16, 32)))
    d = MemoryDirectory("/vmail", recipient_delimiter="+")
    d.add_domain("example.com")
    for i in range(1000):
        d.add_mailbox(f"u{i}@example.com")
    settings = Settings({
        "myhostname": "mx.example.test", "mynetworks": "127.0.0.0/8", "recipient_delimiter": "+",
        "smtpd_client_restrictions": f"check_client_access hash:{tmp}/client_access, "
                                     f"check_client_access cidr:{tmp}/nets.cidr",
        "smtpd_sender_restrictions": f"reject_non_fqdn_sender, check_sender_access hash:{tmp}/sender_access",
        "smtpd_recipient_restrictions": "permit_mynetworks, reject_non_fqdn_recipient, reject_unauth_destination",
    })
    engine = RestrictionEngine(settings, d, resolver=Resolver(["127.0.0.1:9"]))
    states = [SmtpState(client_address=f"192.0.2.{i % 250}", helo_name="client.example.net", protocol="ESMTP",
                        sender=f"s{i}@sender.example", recipient=f"u{i % 1200}@example.com") for i in range(n)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    refused = 0
    for state in states:
        refused += (await engine.check("rcpt", state)).refused
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} RCPT checks: {n / wall:,.0f} checks/s, {wall / n * 1e6:.0f} us/check wall, "
          f"{cpu / n * 1e6:.0f} us/check CPU, {refused} refused (unknown users), peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
