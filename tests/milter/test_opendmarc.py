"""OpenDMARC after OpenDKIM in smtpd_milters, as Postfix sites chain them: it trusts the
Authentication-Results the OpenDKIM verifier added before it (each milter sees the previous
one's changes) and applies the sender domain's policy: pass, reject, quarantine (held)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.dns_responder import DnsResponder
from tests.milter.conftest import DkimKey
from tests.milter.test_opendkim import MSG
from tests.pipeline.test_pipeline_smtp import messages, send


@pytest.fixture
async def dns53(dkim_key: DkimKey) -> AsyncIterator[DnsResponder]:
    """The DNS responder on port 53 of a loopback address of its own (OpenDMARC's resolver
    knows no other port)."""
    if os.geteuid() != 0:
        pytest.skip("port 53 needs root")
    responder = None
    for _ in range(20):
        host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        try:
            responder = await DnsResponder().start(host, 53)
            break
        except OSError:
            continue
    assert responder is not None
    responder.add("test._domainkey.example.com", "TXT", dkim_key.record)
    responder.add("_dmarc.example.com", "TXT", '"v=DMARC1; p=reject"')
    responder.add("_dmarc.example.org", "TXT", '"v=DMARC1; p=reject"')
    responder.add("_dmarc.example.net", "TXT", '"v=DMARC1; p=quarantine"')
    yield responder
    responder.stop()


def host_of(responder: DnsResponder) -> str:
    assert responder.transport is not None
    return str(responder.transport.get_extra_info("sockname")[0])


async def test_dmarc_pass_through_the_dkim_verifiers_results(stack_factory: Any, opendkim: Any, opendmarc: Any,
                                                              dns53: DnsResponder) -> None:
    dns_host = host_of(dns53)
    stack = await stack_factory(smtpd_milters=f"{opendkim('s')}, {opendkim('v', 53, dns_host)}, {opendmarc(dns_host)}")
    code, text = await asyncio.to_thread(send, stack.port(), MSG, "alice@example.com", ("bob@example.com",))
    assert code == 250, text
    [mail] = await stack.wait_for_mail("bob@example.com")
    head = mail.split(b"\n\n")[0]
    assert b"dkim=pass" in head and b"dmarc=pass (p=reject dis=none) header.from=example.com" in head


@pytest.mark.parametrize(("domain", "policy"), [("example.org", "reject"), ("example.net", "quarantine")])
async def test_dmarc_failure_follows_the_policy(stack_factory: Any, opendmarc: Any, dns53: DnsResponder,
                                                caplog: pytest.LogCaptureFixture, domain: str, policy: str) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    stack = await stack_factory(smtpd_milters=opendmarc(host_of(dns53)))
    forged = MSG.replace(b"alice@example.com", f"ceo@{domain}".encode())  # unsigned, no SPF: fails
    code, text = await asyncio.to_thread(send, stack.port(), forged, f"ceo@{domain}", ("bob@example.com",))
    await stack.queue.wait_idle()
    if policy == "reject":
        assert code == 550 and b"rejected by DMARC policy for example.org" in text
        assert messages(caplog, "milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 550 5.7.1 rejected by DMARC")
    else:
        assert code == 250
        queue_id = text.decode().rsplit(" ", 1)[1]
        assert stack.queue.entries[queue_id].state == "hold"
        assert messages(caplog, f"{queue_id}: milter-hold: END-OF-MESSAGE from unknown[127.0.0.1]")
    assert stack.maildir("bob@example.com") == []
