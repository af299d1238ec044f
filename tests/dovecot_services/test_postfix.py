"""pymailsrv in Dovecot's place under a real Postfix (Debian's): Postfix authenticates SMTP AUTH
against our auth-client socket, delivers over LMTP into Maildirs that our IMAP then serves, and
refuses an over-quota recipient at RCPT through our quota-status policy service.

One pymailsrv (``pymailsrv serve``, its own process) and one Postfix instance serve the module."""

from __future__ import annotations

import asyncio
import imaplib
import re
import shutil
import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.app.server_process import ServerProcess
from tests.dovecot_services.conftest import QUOTA, ROWS, fill
from tests.dovecot_services.postfix_peer import PostfixPeer, postfix_available, scratch_directory

MESSAGE = (b"From: <someone@remote.example>\r\nTo: <bob@example.com>\r\nSubject: via postfix\r\n"
           b"Message-ID: <pf-1@remote.example>\r\n\r\nhello through postfix and lmtp\r\n")


# a master.cf service for LMTP that requires TLS (and logs it)
LMTPS_SERVICE = ("lmtps     unix  -       -       n       -       -       lmtp"
                 " -o lmtp_tls_security_level=encrypt -o lmtp_tls_loglevel=1\n")


@dataclass
class Site:
    postfix: PostfixPeer
    pymailsrv: ServerProcess
    vmail: Path

    @property
    def imap_port(self) -> int:
        return self.pymailsrv.ports["imap"]


def _seed(url: str) -> None:
    from pymailsrv.db import schema

    async def run() -> None:
        await schema.create_schema(url)
        await schema.seed(url, ROWS)

    asyncio.run(run())


@pytest.fixture(scope="module")
def site(tls_files: tuple[str, str]) -> Iterator[Site]:
    why = postfix_available()
    if why:
        pytest.skip(why)
    base = scratch_directory("pymailsrv-postfix-")
    run = base / "run"
    run.mkdir(mode=0o755)
    vmail = base / "vmail"
    url = f"sqlite+aiosqlite:///{base}/pymailsrv.db"
    _seed(url)
    fill(vmail, "full", QUOTA)
    params = {
        "myhostname": "mx.example.test", "data_directory": str(base / "data"), "database_url": url,
        "virtual_mailbox_base": str(vmail), "default_pass_scheme": "SHA512-CRYPT", "worker_processes": "0",
        "imap_listen": "127.0.0.1:0", "lmtp_listen": f"unix:{run}/lmtp, 127.0.0.1:0",
        "dovecot_auth_listen": f"unix:{run}/auth", "quota_status_listen": "127.0.0.1:0",
        "service_socket_group": "postfix", "tls_cert_file": tls_files[0], "tls_key_file": tls_files[1],
    }
    conf = base / "pymailsrv.conf"
    conf.write_text("".join(f"{k} = {v}\n" for k, v in params.items()))
    server = ServerProcess(conf).start(expect=("imap", "status", "lmtp"))
    postfix = PostfixPeer(base, {
        "virtual_mailbox_domains": "example.com",
        "virtual_mailbox_maps": f"texthash:{base}/vmailbox",
        "virtual_transport": f"lmtp:unix:{run}/lmtp",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": f"{run}/auth",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_relay_restrictions": "permit_sasl_authenticated, reject_unauth_destination",
        "smtpd_recipient_restrictions":
            # (ServerProcess keys ports by the word before "listening": quota-status is "status")
            f"reject_unauth_destination, check_policy_service inet:127.0.0.1:{server.ports['status']}",
        # alice's mail goes over TCP with STARTTLS required (LMTP between machines)
        "transport_maps": f"texthash:{base}/transport",
    }, master=LMTPS_SERVICE)
    (base / "transport").write_text(f"alice@example.com lmtps:inet:127.0.0.1:{server.ports['lmtp']}\n")
    (base / "vmailbox").write_text("".join(f"{u['username']} x\n" for u in ROWS["mailbox"]))
    try:
        postfix.start()
    except BaseException:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
        raise
    try:
        yield Site(postfix, server, vmail)
    finally:
        postfix.stop()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_smtp_auth_through_postfix_against_our_auth_socket(site: Site) -> None:
    with smtplib.SMTP("127.0.0.1", site.postfix.port, timeout=30) as c:
        c.ehlo("client.example.net")
        assert set(c.esmtp_features["auth"].split()) >= {"PLAIN", "LOGIN"}
        code, _ = c.login("alice@example.com", "alicepw")
        assert code == 235
    with smtplib.SMTP("127.0.0.1", site.postfix.port, timeout=30) as c:
        c.ehlo("client.example.net")
        c.user, c.password = "alice@example.com", "alicepw"
        assert c.auth("LOGIN", c.auth_login)[0] == 235  # the two-step exchange, through CONT
    with smtplib.SMTP("127.0.0.1", site.postfix.port, timeout=30) as c:
        c.ehlo("client.example.net")
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            c.login("alice@example.com", "wrong")
        assert refused.value.smtp_code == 535
    log = site.pymailsrv.text()
    assert "login: user=<alice@example.com>, rip=127.0.0.1, service=smtp" in log
    assert "login failed: user=<alice@example.com>, rip=127.0.0.1, service=smtp, reason=password mismatch" in log


def test_postfix_delivers_over_lmtp_into_a_maildir_our_imap_serves(site: Site) -> None:
    with smtplib.SMTP("127.0.0.1", site.postfix.port, timeout=30) as c:
        assert c.sendmail("someone@remote.example", ["bob@example.com"], MESSAGE) == {}
    site.postfix.wait_log("to=<bob@example.com>, relay=")
    text = site.postfix.wait_log("status=sent (250 2.0.0 <bob@example.com>")
    assert " Saved)" in text
    imap = imaplib.IMAP4("127.0.0.1", site.imap_port, timeout=30)
    try:
        imap.login("bob@example.com", "bobpw")
        deadline = time.monotonic() + 30
        while True:
            typ, data = imap.select("INBOX")
            if int(data[0] or 0) >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        typ, fetched = imap.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK"
        stored = fetched[0][1]
    finally:
        imap.logout()
    head = stored.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    assert lines[0] == b"Return-Path: <someone@remote.example>"
    assert lines[1] == b"Delivered-To: bob@example.com"
    assert lines[2].startswith(b"Received: from mx.postfix.test")
    assert b"\tby mx.example.test with LMTP" in head
    assert b"by mx.postfix.test (Postfix) with ESMTP" in head  # Postfix's own trace, below ours
    assert stored.endswith(b"hello through postfix and lmtp\r\n")


def test_over_quota_recipient_refused_at_rcpt_by_postfix_via_quota_status(site: Site) -> None:
    with smtplib.SMTP("127.0.0.1", site.postfix.port, timeout=30) as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            c.sendmail("someone@remote.example", ["full@example.com"], MESSAGE)
        code, text = refused.value.recipients["full@example.com"]
        assert code == 552 and b"5.2.2" in text and b"Mailbox is full" in text
        # a mailbox with room passes the same check
        assert c.sendmail("someone@remote.example", ["small@example.com"], MESSAGE) == {}
    site.postfix.wait_log("to=<small@example.com>, relay=")
    assert re.search(r"quota-status\[\d+\]: recipient=<full@example.com>, size=\d+: 552 5.2.2 Mailbox is full",
                     site.pymailsrv.text())


def test_postfix_lmtp_over_tcp_with_starttls(site: Site) -> None:
    with smtplib.SMTP("127.0.0.1", site.postfix.port, timeout=30) as c:
        assert c.sendmail("someone@remote.example", ["alice@example.com"], MESSAGE) == {}
    text = site.postfix.wait_log("status=sent (250 2.0.0 <alice@example.com>")
    assert "TLS connection established to 127.0.0.1[127.0.0.1]" in text
    new = site.vmail / "example.com" / "alice" / "new"
    deadline = time.monotonic() + 30
    while not (new.exists() and any(new.iterdir())):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    [stored] = [p.read_bytes() for p in new.iterdir()]
    assert b"\tby mx.example.test with LMTPS\n" in stored
