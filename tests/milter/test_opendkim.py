"""OpenDKIM as Postfix sites run it, in smtpd_milters: signing mail from our own network, and
verifying (asking the test's DNS responder for the key); a message changed after signing fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.dns_responder import DnsResponder
from tests.milter.conftest import DkimKey
from tests.milter.test_libmilter import header_block
from tests.pipeline.test_pipeline_smtp import send

MSG = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: signed\r\n"
       b"Date: Sun, 06 Dec 2026 08:00:00 +0000\r\nMessage-ID: <dkim1@example.com>\r\n\r\n"
       b"Hello Bob,\r\nthis message is signed.\r\n")


@pytest.fixture
async def dns(dkim_key: DkimKey) -> AsyncIterator[DnsResponder]:
    responder = await DnsResponder().start()
    responder.add("test._domainkey.example.com", "TXT", dkim_key.record)
    yield responder
    responder.stop()


def signed_part(mail: bytes) -> bytes:
    """A delivered message as it left the signer: without the delivery agent's two headers."""
    head, _, rest = mail.partition(b"\n\n")
    lines = head.split(b"\n")
    assert lines[0].startswith(b"Return-Path:") and lines[1].startswith(b"Delivered-To:")
    return (b"\n".join(lines[2:]) + b"\n\n" + rest).replace(b"\n", b"\r\n")


async def test_opendkim_signs_and_a_second_opendkim_verifies(stack_factory: Any, opendkim: Any,
                                                              dns: DnsResponder) -> None:
    # the verifier runs after the signer, on the message as the signer changed it
    stack = await stack_factory(smtpd_milters=f"{opendkim('s')}, {opendkim('v', dns.port)}")
    code, text = await asyncio.to_thread(send, stack.port(), MSG, "alice@example.com", ("bob@example.com",))
    assert code == 250, text
    [mail] = await stack.wait_for_mail("bob@example.com")
    head = header_block(mail)
    signature = next(h for h in head if h.startswith(b"DKIM-Signature:"))
    assert b"d=example.com" in mail and b"s=test" in mail and b"c=relaxed/relaxed" in signature + mail
    results = b"\n".join(h for h in head if h.startswith(b"Authentication-Results:"))
    assert results.startswith(b"Authentication-Results: mx.example.test;")
    assert b"dkim=pass" in mail.split(b"\n\n")[0]
    assert ("test._domainkey.example.com", "TXT") in dns.queries


async def test_opendkim_verifies_what_it_signed_and_fails_a_changed_message(
        stack_factory: Any, opendkim: Any, dns: DnsResponder) -> None:
    signer = await stack_factory(smtpd_milters=opendkim("s"))
    code, _ = await asyncio.to_thread(send, signer.port(), MSG, "alice@example.com", ("bob@example.com",))
    assert code == 250
    [mail] = await signer.wait_for_mail("bob@example.com")
    original = signed_part(mail)
    changed = original.replace(b"this message is signed.", b"this message was changed.")

    stack = await stack_factory(smtpd_milters=opendkim("v", dns.port))
    for count, (content, verdict) in enumerate(((original, b"dkim=pass"), (changed, b"dkim=fail")), 1):
        code, _ = await asyncio.to_thread(send, stack.port(), content, "alice@example.com", ("alice@example.com",))
        assert code == 250
        body = content.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
        # Maildir names do not sort by arrival within a second: find the message by its body
        [got] = [m for m in await stack.wait_for_mail("alice@example.com", count) if m.endswith(body)]
        head = got.split(b"\n\n")[0]
        assert b"Authentication-Results: mx.example.test;" in head
        assert verdict in head, head
