"""Interop with OpenDKIM (Debian's opendkim, in its test mode ``opendkim -t`` with the keys from a
TestPublicKeys file instead of DNS): mail pymailsrv signs and delivers verifies in OpenDKIM, the
same message altered fails there; a signature made by OpenDKIM's library (opendkim-testmsg, which
signs with rsa-sha1 only) is recognised and held to RFC 8301 (dkim=policy)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.senderauth.conftest import Keys, auth_results, message, send

pytestmark = pytest.mark.skipif(shutil.which("opendkim") is None and not Path("/usr/sbin/opendkim").exists(),
                                reason="opendkim is not installed (.ci/run installs it)")
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
TESTMSG = shutil.which("opendkim-testmsg") or "/usr/sbin/opendkim-testmsg"


def _opendkim_verify(tmp_path: Path, keys: Keys, content: bytes) -> str:
    (tmp_path / "keys.txt").write_text(f"rsa1._domainkey.example.com v=DKIM1; k=rsa; p={keys.rsa_public}\n"
                                       f"ed1._domainkey.example.com v=DKIM1; k=ed25519; p={keys.ed_public}\n")
    (tmp_path / "opendkim.conf").write_text(f"Mode v\nSyslog no\nTestPublicKeys {tmp_path / 'keys.txt'}\n")
    (tmp_path / "msg.eml").write_bytes(content)
    done = subprocess.run([OPENDKIM, "-x", str(tmp_path / "opendkim.conf"), "-t", str(tmp_path / "msg.eml")],
                          capture_output=True, timeout=60, check=False)
    return (done.stdout + done.stderr).decode(errors="replace")


def _as_received(mail: bytes) -> bytes:
    """The delivered message without the two fields the Maildir agent prepends."""
    lines = mail.split(b"\n")
    assert lines[0].startswith(b"Return-Path:") and lines[1].startswith(b"Delivered-To:")
    return b"\n".join(lines[2:])


async def test_pymailsrv_signature_verifies_in_opendkim(stack_factory: Any, dkim_keys: Keys, tmp_path: Path) -> None:
    stack = await stack_factory(inside=True, dkim_key_table=dkim_keys.key_table,
                                dkim_signing_table=dkim_keys.signing_table)
    code, _ = await asyncio.to_thread(send, stack.port(), message("alice@example.com", subject="to opendkim"),
                                      sender="alice@example.com", rcpts=("bob@example.com",))
    assert code == 250
    mail = _as_received(await stack.wait_for_mail("bob@example.com"))
    out = await asyncio.to_thread(_opendkim_verify, tmp_path, dkim_keys, mail)
    assert "d=example.com" in out and "succeeded" in out, out
    out = await asyncio.to_thread(_opendkim_verify, tmp_path, dkim_keys, mail.replace(b"body", b"b0dy"))
    assert "failed" in out and "succeeded" not in out, out


async def test_opendkim_testmsg_rsa_sha1_signature_is_policy(stack_factory: Any, dns_server: Any, tmp_path: Path,
                                                              dkim_keys: Keys) -> None:
    key = tmp_path / "sender.private"
    key.write_bytes(dkim_keys.sender_rsa)
    raw = message(subject="from opendkim").replace(b"\r\n", b"\n")
    done = await asyncio.to_thread(subprocess.run, [TESTMSG, "-d", "sender.test", "-s", "s1", "-k", str(key)],
                                   input=raw, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert b"a=rsa-sha1" in done.stdout
    stack = await stack_factory()
    code, _ = await asyncio.to_thread(send, stack.port(), done.stdout.replace(b"\n", b"\r\n"))
    assert code == 250
    results = auth_results(await stack.wait_for_mail("alice@example.com"))
    assert "dkim=policy header.d=sender.test header.a=rsa-sha1 header.s=s1" in results
