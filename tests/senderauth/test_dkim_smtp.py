"""DKIM over real SMTP sockets: mail of our own users is dual-signed (RSA-2048 and Ed25519) and
verifies with dkimpy's verifier against the loopback DNS; mail signed by dkimpy verifies in
pymailsrv (sender_auth), and a message altered after signing fails."""

from __future__ import annotations

import asyncio
from typing import Any

import dkim

from pymailsrv.pipeline.message import Message
from tests.dns_responder import DnsResponder
from tests.senderauth.conftest import Keys, auth_results, dnsfunc, message, send


def _split(mail: bytes) -> bytes:
    """The message as received (Maildir's Return-Path/Delivered-To are not signed and harmless)."""
    return mail.replace(b"\n", b"\r\n")


async def test_own_mail_is_dual_signed_and_verifies_with_dkimpy(stack_factory: Any, dns_server: DnsResponder,
                                                                dkim_keys: Keys) -> None:
    stack = await stack_factory(inside=True, dkim_key_table=dkim_keys.key_table,
                                dkim_signing_table=dkim_keys.signing_table)
    code, _ = await asyncio.to_thread(send, stack.port(), message("alice@example.com"), sender="alice@example.com",
                                      rcpts=("bob@example.com",))
    assert code == 250
    mail = await stack.wait_for_mail("bob@example.com")
    signatures = Message(mail).values("DKIM-Signature")
    assert len(signatures) == 2
    assert any("a=rsa-sha256" in s and "s=rsa1" in s for s in signatures)
    assert any("a=ed25519-sha256" in s and "s=ed1" in s for s in signatures)
    assert all("c=relaxed/relaxed" in s for s in signatures)
    header_list = signatures[0].split("h=", 1)[1].split(";", 1)[0].replace(" ", "").replace("\n", "")
    for name in ("from", "subject", "date", "to"):  # oversigned: one more than present
        assert header_list.split(":").count(name) == 2, header_list
    get_txt = dnsfunc(dns_server)
    content = _split(mail)
    for idx in range(2):
        assert await asyncio.to_thread(dkim.DKIM(content).verify, idx, get_txt)
    assert await asyncio.to_thread(dkim.verify, content, None, get_txt)


async def test_mail_of_a_logged_in_user_is_signed(stack_factory: Any, dns_server: DnsResponder,
                                                  dkim_keys: Keys) -> None:
    stack = await stack_factory(auth=True, smtpd_sasl_auth_enable="yes", dkim_key_table=dkim_keys.key_table,
                                dkim_signing_table=dkim_keys.signing_table)
    code, _ = await asyncio.to_thread(send, stack.port(), message("alice@example.com", subject="submitted"),
                                      sender="alice@example.com", rcpts=("bob@example.com",),
                                      login=("alice@example.com", "secret"))
    assert code == 250
    mail = await stack.wait_for_mail("bob@example.com")
    assert len(Message(mail).values("DKIM-Signature")) == 2
    assert Message(mail).values("Authentication-Results") == []  # our own users' mail is not checked
    assert await asyncio.to_thread(dkim.verify, _split(mail), None, dnsfunc(dns_server))


async def test_mail_from_outside_is_not_signed(stack_factory: Any, dkim_keys: Keys) -> None:
    k = dkim_keys
    stack = await stack_factory(dkim_key_table=k.key_table, dkim_signing_table=k.signing_table)
    code, _ = await asyncio.to_thread(send, stack.port(), message("alice@example.com"), sender="alice@example.com")
    assert code == 250
    mail = await stack.wait_for_mail("alice@example.com")
    assert Message(mail).values("DKIM-Signature") == []


async def test_mail_signed_by_dkimpy_verifies_and_altered_fails(stack_factory: Any, dkim_keys: Keys) -> None:
    stack = await stack_factory()
    raw = message(subject="signed")
    rsa = dkim.sign(raw, b"s1", b"sender.test", dkim_keys.sender_rsa, canonicalize=(b"relaxed", b"simple"),
                    include_headers=[b"from", b"to", b"subject", b"date"])
    ed = dkim.sign(raw, b"e1", b"sender.test", dkim_keys.sender_ed, signature_algorithm=b"ed25519-sha256",
                   include_headers=[b"from", b"subject"])
    code, _ = await asyncio.to_thread(send, stack.port(), rsa + ed + raw)
    assert code == 250
    results = auth_results(await stack.wait_for_mail("alice@example.com"))
    assert "dkim=pass header.d=sender.test header.a=rsa-sha256 header.s=s1" in results
    assert "dkim=pass header.d=sender.test header.a=ed25519-sha256 header.s=e1" in results

    altered = rsa + raw.replace(b"body", b"b0dy")
    code, _ = await asyncio.to_thread(send, stack.port(), altered, rcpts=("bob@example.com",))
    assert code == 250
    results = auth_results(await stack.wait_for_mail("bob@example.com"))
    assert "dkim=fail header.d=sender.test" in results


async def test_signature_without_a_published_key_is_permerror(stack_factory: Any, dkim_keys: Keys) -> None:
    stack = await stack_factory()
    raw = message(subject="nokey")
    sig = dkim.sign(raw, b"gone", b"sender.test", dkim_keys.sender_rsa, include_headers=[b"from"])
    code, _ = await asyncio.to_thread(send, stack.port(), sig + raw)
    assert code == 250
    assert "dkim=permerror header.d=sender.test" in auth_results(await stack.wait_for_mail("alice@example.com"))


async def test_key_lookup_failure_is_temperror(stack_factory: Any, dkim_keys: Keys, dns_server: DnsResponder) -> None:
    dns_server.servfail.add("s1._domainkey.sender.test")
    stack = await stack_factory()
    raw = message(subject="servfail")
    sig = dkim.sign(raw, b"s1", b"sender.test", dkim_keys.sender_rsa, include_headers=[b"from"])
    code, _ = await asyncio.to_thread(send, stack.port(), sig + raw)
    assert code == 250
    assert "dkim=temperror header.d=sender.test" in auth_results(await stack.wait_for_mail("alice@example.com"))


async def test_bounces_the_server_generates_are_signed(stack_factory: Any, dns_server: DnsResponder,
                                                       dkim_keys: Keys, tmp_path: Any) -> None:
    from tests.delivery.delivery_peers import SmtpPeer

    table = tmp_path / "BounceSigningTable"
    table.write_text("*@mx.example.com rsa1._domainkey.example.com\n")
    peer = await SmtpPeer(mode="permfail").start()
    try:
        stack = await stack_factory(inside=True, dkim_key_table=dkim_keys.key_table,
                                    dkim_signing_table=f"refile:{table}", relayhost=f"[127.0.0.1]:{peer.port}")
        code, _ = await asyncio.to_thread(send, stack.port(), message("alice@example.com", subject="will bounce"),
                                          sender="alice@example.com", rcpts=("someone@remote.test",))
        assert code == 250
        bounce = await stack.wait_for_mail("alice@example.com")
    finally:
        await peer.stop()
    parsed = Message(bounce)
    assert (parsed.get("From") or "").startswith("MAILER-DAEMON@mx.example.com")
    [signature] = parsed.values("DKIM-Signature")
    assert "d=example.com" in signature and "s=rsa1" in signature
    assert await asyncio.to_thread(dkim.verify, _split(bounce), None, dnsfunc(dns_server))


async def test_mail_signed_by_the_dkimsign_command_verifies(stack_factory: Any, dkim_keys: Keys,
                                                            tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    command = Path(sys.executable).parent / "dkimsign"  # dkimpy's command, installed beside python
    key = tmp_path / "s1.private"
    key.write_bytes(dkim_keys.sender_rsa)
    done = await asyncio.to_thread(subprocess.run, [str(command), "--hcanon", "relaxed", "--bcanon", "relaxed",
                                                    "s1", "sender.test", str(key)],
                                   input=message(subject="dkimsign").replace(b"\r\n", b"\n"), capture_output=True,
                                   timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    stack = await stack_factory()
    code, _ = await asyncio.to_thread(send, stack.port(), done.stdout.replace(b"\n", b"\r\n"))
    assert code == 250
    results = auth_results(await stack.wait_for_mail("alice@example.com"))
    assert "dkim=pass header.d=sender.test header.a=rsa-sha256 header.s=s1" in results
