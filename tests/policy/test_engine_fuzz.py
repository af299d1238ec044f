"""Whatever the client sends (names, addresses, odd bytes), a check returns a Decision; it never
raises. Every non-DNS built-in and every table type is in the configuration."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.policy.base import SmtpState
from pymailsrv.policy.dns import Resolver
from pymailsrv.policy.restrictions import RestrictionEngine

from .conftest import BASE

HERE = Path(__file__).parent
TEXT = st.one_of(st.text(max_size=80), st.sampled_from(["", "<>", "@", "a@b", '"x@y"@example.com', "[1.2.3.4]",
                                                        "@a:b@c", "a%b@localhost", "x!y", "\x00", "ä@ö.example",
                                                        "a@[IPv6:::1]", "a@[999.1.1.1]", "a" * 300 + "@x.example"]))


def _engine(tmp: Path) -> RestrictionEngine:
    (tmp / "re").write_text("/^(.*)@(.*)$/ PREPEND X-A: $1 $2\n!/@/ DUNNO\n")
    (tmp / "cidr").write_text("10.0.0.0/8 REJECT\n!192.0.2.0/24 DUNNO\n")
    (tmp / "hash").write_text("example.com OK\nspam.example REJECT\n<> DUNNO\n")
    d = MemoryDirectory("/vmail", recipient_delimiter="+")
    d.add_domain("example.com")
    d.add_mailbox("alice@example.com")
    values = {**BASE,
              "smtpd_client_restrictions": f"check_client_access cidr:{tmp}/cidr, reject_unauth_pipelining, "
                                           "check_reverse_client_access inline:{ x=OK }",
              "smtpd_helo_restrictions": f"warn_if_reject reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, "
                                         f"check_helo_access hash:{tmp}/hash",
              "smtpd_sender_restrictions": f"reject_non_fqdn_sender, check_sender_access regexp:{tmp}/re, "
                                           f"check_sender_access hash:{tmp}/hash, reject_sender_login_mismatch, "
                                           "reject_unlisted_sender",
              "smtpd_recipient_restrictions": f"reject_non_fqdn_recipient, reject_unauth_destination, "
                                              f"check_recipient_access pcre:{tmp}/re, reject_multi_recipient_bounce",
              "smtpd_data_restrictions": "reject_unauth_pipelining, reject_multi_recipient_bounce",
              "smtpd_reject_unlisted_sender": "yes"}
    return RestrictionEngine(Settings(values), d, resolver=Resolver(["127.0.0.1:9"]), table_check_interval=60)


_TMP = tempfile.mkdtemp(prefix="policy-fuzz-")
atexit.register(shutil.rmtree, _TMP, True)
ENGINE = _engine(Path(_TMP))


@settings(max_examples=150, deadline=None)
@given(client=st.one_of(st.ip_addresses().map(str), TEXT), name=TEXT, helo=TEXT, sender=st.one_of(st.none(), TEXT),
       recipient=TEXT, sasl=st.sampled_from(["", "alice@example.com", "x"]), piped=st.booleans())
def test_checks_never_raise(client: str, name: str, helo: str, sender: str | None, recipient: str, sasl: str,
                            piped: bool) -> None:
    engine = ENGINE
    state = SmtpState(client_address=client, client_name=name or "unknown", helo_name=helo, sender=sender,
                      recipient=recipient, sasl_username=sasl, pipelining_violation=piped, protocol="ESMTP")

    async def run() -> None:
        for stage in ("connect", "helo", "mail", "rcpt", "data", "end_of_data"):
            decision = await engine.check(stage, state)  # type: ignore[arg-type]
            assert decision.action in ("permit", "reject", "defer", "dunno")
            if decision.refused:
                assert 400 <= decision.code < 600 and decision.reply()

    asyncio.run(run())
