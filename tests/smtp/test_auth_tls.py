"""AUTH PLAIN/LOGIN on every listener, before and after TLS; STARTTLS rules and regressions."""

from __future__ import annotations

import asyncio
import base64
import logging
import smtplib
import ssl

import pytest

from pymailsrv.smtp import replies as R


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def plain(user: str, password: str, authz: str = "") -> str:
    return b64(f"{authz}\0{user}\0{password}")


async def tls_client(raw, kind, client_tls):  # type: ignore[no-untyped-def]
    """A client with TLS active (STARTTLS on smtpd/submission, implicit on smtps) after EHLO."""
    if kind == "smtps":
        c = await raw(kind, tls=client_tls)
    else:
        c = await raw(kind)
        await c.cmd("EHLO client.test", "250 *")
        await c.cmd("STARTTLS", R.STARTTLS_GO)
        await c.starttls(client_tls)
    await c.send("EHLO client.test\r\n")
    lines = await c.reply()
    assert "250-AUTH PLAIN LOGIN" in lines
    assert not any("STARTTLS" in ln for ln in lines)
    return c


@pytest.mark.parametrize("kind", ["submission", "smtps"])
@pytest.mark.parametrize("form", ["plain-initial", "plain-challenge", "login-challenge", "login-initial"])
async def test_auth_success(smtp, raw, client_tls, kind, form):
    c = await tls_client(raw, kind, client_tls)
    if form == "plain-initial":
        await c.cmd("AUTH PLAIN " + plain("alice@example.test", "wonderland"), R.AUTH_OK)
    elif form == "plain-challenge":
        await c.cmd("AUTH PLAIN", "334 ")
        await c.cmd(plain("alice@example.test", "wonderland"), R.AUTH_OK)
    elif form == "login-challenge":  # Outlook
        await c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6")
        await c.cmd(b64("alice@example.test"), "334 UGFzc3dvcmQ6")
        await c.cmd(b64("wonderland"), R.AUTH_OK)
    else:  # Thunderbird
        await c.cmd("AUTH LOGIN " + b64("alice@example.test"), "334 UGFzc3dvcmQ6")
        await c.cmd(b64("wonderland"), R.AUTH_OK)
    await c.cmd("AUTH PLAIN " + plain("alice@example.test", "wonderland"), R.AUTH_ALREADY)
    await c.cmd("MAIL FROM:<alice@example.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<someone@far.test>", R.RCPT_OK)  # authenticated: relaying allowed
    await c.cmd("DATA", R.DATA_GO)
    await c.send("Subject: hi\r\n\r\nbody\r\n.\r\n")
    await c.expect("250 2.0.0 Ok: queued as *")
    env, content = smtp.queue.messages[-1]
    assert env.sasl_username == "alice@example.test" and env.sasl_method in ("PLAIN", "LOGIN")
    assert env.protocol == "ESMTPSA"
    assert b"\tby mx.example.test (pymailsrv) with ESMTPSA" in content
    assert b"(using TLSv1." in content
    assert b"Authenticated sender" not in content  # smtpd_sasl_authenticated_header = no
    assert b"\r\nMessage-ID: <" in content and b"\r\nDate: " in content


@pytest.mark.parametrize("kind", ["smtpd", "submission", "smtps"])
@pytest.mark.parametrize("user,password,reply", [
    ("alice@example.test", "wrong", R.AUTH_FAILED),
    ("nobody@example.test", "x", R.AUTH_FAILED),
    ("carol@example.test", "x", R.AUTH_FAILED),  # inactive
    ("unavailable@example.test", "x", R.AUTH_TEMPFAIL),
])
async def test_auth_refused(smtp_factory, client_tls, kind, user, password, reply):
    from tests.smtp.conftest import RawClient

    h = await smtp_factory(smtpd_sasl_auth_enable="yes")
    if kind == "smtps":
        c = await RawClient.connect(h.port(kind), tls=client_tls)
        await c.expect("220 *")
    else:
        c = await RawClient.connect(h.port(kind))
        await c.expect("220 *")
        await c.cmd("EHLO c", "250 *")
        await c.cmd("STARTTLS", R.STARTTLS_GO)
        await c.starttls(client_tls)
    await c.cmd("EHLO c", "250 *")
    await c.cmd("AUTH PLAIN " + plain(user, password), reply)
    await c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6")
    await c.cmd(b64(user), "334 UGFzc3dvcmQ6")
    await c.cmd(b64(password), reply)
    await c.cmd("NOOP", R.OK)  # still serving
    await c.close()


async def test_submission_refuses_auth_and_mail_before_starttls(smtp, raw):
    c = await raw("submission")
    await c.send("EHLO client.test\r\n")
    lines = await c.reply()
    assert "250-STARTTLS" in lines and not any("AUTH" in ln for ln in lines)
    await c.cmd("AUTH PLAIN " + plain("alice@example.test", "wonderland"), R.TLS_REQUIRED)
    await c.cmd("MAIL FROM:<alice@example.test>", R.TLS_REQUIRED)
    await c.cmd("NOOP", R.OK)
    assert smtp.auth.calls == []


async def test_submission_requires_auth_to_send(smtp, raw, client_tls):
    c = await tls_client(raw, "submission", client_tls)
    await c.cmd("MAIL FROM:<alice@example.test>", R.AUTH_REQUIRED)


async def test_sender_login_mismatch(smtp, raw, client_tls):
    c = await tls_client(raw, "smtps", client_tls)
    await c.cmd("AUTH PLAIN " + plain("alice@example.test", "wonderland"), R.AUTH_OK)
    await c.cmd("MAIL FROM:<bob@example.test>",
                "553 5.7.1 <bob@example.test>: Sender address rejected: not owned by user alice@example.test")
    await c.cmd("MAIL FROM:<sales@example.test>", R.MAIL_OK)  # an alias alice owns
    await c.cmd("RSET", R.OK)
    await c.cmd("MAIL FROM:<>", R.MAIL_OK)


async def test_port25_auth_only_when_enabled(smtp_factory, client_tls):
    from tests.smtp.conftest import RawClient

    h = await smtp_factory()  # smtpd_sasl_auth_enable = no
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.send("EHLO c\r\n")
    assert not any("AUTH" in ln for ln in await c.reply())
    await c.cmd("AUTH PLAIN " + plain("alice@example.test", "wonderland"), R.AUTH_NOT_ENABLED)
    h2 = await smtp_factory(smtpd_sasl_auth_enable="yes", smtpd_tls_auth_only="yes",
                            broken_sasl_auth_clients="yes")
    c = await RawClient.connect(h2.port())
    await c.expect("220 *")
    await c.send("EHLO c\r\n")
    assert not any("AUTH" in ln for ln in await c.reply())
    await c.cmd("STARTTLS", R.STARTTLS_GO)
    await c.starttls(client_tls)
    await c.send("EHLO c\r\n")
    lines = await c.reply()
    assert "250-AUTH PLAIN LOGIN" in lines and "250-AUTH=PLAIN LOGIN" in lines
    h3 = await smtp_factory(smtpd_sasl_auth_enable="yes")
    c = await RawClient.connect(h3.port())
    await c.expect("220 *")
    await c.cmd("EHLO c", "250 *")
    await c.cmd("AUTH PLAIN " + plain("alice@example.test", "wonderland"), R.AUTH_OK)


@pytest.mark.parametrize("exchange", [
    ["AUTH PLAIN !!!notbase64", R.AUTH_BAD_BASE64],
    ["AUTH PLAIN", "334 ", "%%%", R.AUTH_BAD_BASE64],
    ["AUTH LOGIN", "334 VXNlcm5hbWU6", "*", R.AUTH_ABORTED],
    ["AUTH LOGIN", "334 VXNlcm5hbWU6", "@@", R.AUTH_BAD_BASE64],
    ["AUTH PLAIN " + b64("no-nuls-here"), R.AUTH_FAILED],
    ["AUTH PLAIN " + plain("alice@example.test", "wonderland", authz="bob@example.test"), R.AUTH_FAILED],
    ["AUTH CRAM-MD5", R.AUTH_BAD_MECHANISM],
    ["AUTH", R.AUTH_SYNTAX],
    ["AUTH PLAIN a b", R.AUTH_SYNTAX],
    ["AUTH PLAIN =", R.AUTH_FAILED],
])
async def test_auth_malformed(smtp, raw, client_tls, exchange):
    c = await tls_client(raw, "smtps", client_tls)
    for send, expect in zip(exchange[::2], exchange[1::2], strict=True):
        await c.cmd(send, expect)
    await c.cmd("NOOP", R.OK)


async def test_auth_needs_ehlo_and_no_transaction(smtp, raw, client_tls):
    c = await raw("smtps", tls=client_tls)
    await c.cmd("AUTH PLAIN " + plain("alice@example.test", "wonderland"), R.NEED_HELO)


async def test_smtplib_starttls_login(smtp, client_tls):
    def run() -> None:
        with smtplib.SMTP("127.0.0.1", smtp.port("submission"), timeout=5) as c:
            c.starttls(context=client_tls)
            c.login("alice@example.test", "wonderland")
            c.sendmail("alice@example.test", ["x@far.test"], b"Subject: s\r\n\r\nb\r\n")
        with smtplib.SMTP_SSL("127.0.0.1", smtp.port("smtps"), timeout=5, context=client_tls) as c:
            c.login("bob@example.test", "builder")
            with pytest.raises(smtplib.SMTPAuthenticationError):
                c2 = smtplib.SMTP_SSL("127.0.0.1", smtp.port("smtps"), timeout=5, context=client_tls)
                try:
                    c2.login("bob@example.test", "nope")
                finally:
                    c2.close()

    await asyncio.to_thread(run)
    assert len(smtp.queue.messages) == 1


async def test_no_password_in_logs(smtp, raw, client_tls, caplog):
    caplog.set_level(1, logger="pymailsrv")
    c = await tls_client(raw, "smtps", client_tls)
    await c.cmd("AUTH PLAIN " + plain("alice@example.test", "S3cretPW-1"), R.AUTH_FAILED)
    await c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6")
    await c.cmd(b64("alice@example.test"), "334 UGFzc3dvcmQ6")
    await c.cmd(b64("S3cretPW-2"), R.AUTH_FAILED)
    await c.cmd("AUTH PLAIN " + plain("alice@example.test", "wonderland"), R.AUTH_OK)
    await c.cmd("QUIT", R.QUIT_OK)
    await c.closed()
    await asyncio.sleep(0.05)
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("S3cretPW", "wonderland", b64("S3cretPW-2"), plain("alice@example.test", "wonderland")):
        assert secret not in text
    expected = "SASL PLAIN authentication failed: authentication failure, sasl_username=alice@example.test"
    assert expected in text


async def test_starttls_discards_pipelined_plaintext(smtp, raw, client_tls):
    """RFC 3207 §4.2 / CVE-2011-0411: commands sent with STARTTLS in one write are dropped."""
    c = await raw()
    await c.cmd("EHLO client.test", "250 *")
    await c.send("STARTTLS\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<bob@example.test>\r\n")
    await c.expect(R.STARTTLS_GO)
    await c.starttls(client_tls)
    await c.cmd("NOOP", R.OK)  # the first reply over TLS answers NOOP, not the injected MAIL
    await c.cmd("RCPT TO:<bob@example.test>", R.NEED_MAIL)
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)  # the session state was reset


async def test_starttls_rules(smtp, raw, client_tls):
    c = await raw()
    await c.cmd("EHLO c", "250 *")
    await c.cmd("STARTTLS now", R.STARTTLS_SYNTAX)
    await c.cmd("STARTTLS", R.STARTTLS_GO)
    await c.starttls(client_tls)
    await c.cmd("STARTTLS", R.TLS_ALREADY)
    s = await raw("smtps", tls=client_tls)
    await s.cmd("EHLO c", "250 *")
    await s.cmd("STARTTLS", R.TLS_ALREADY)


async def test_starttls_handshake_garbage_closes(smtp, raw, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    c = await raw()
    await c.cmd("EHLO c", "250 *")
    await c.cmd("STARTTLS", R.STARTTLS_GO)
    await c.send(b"this is not a TLS client hello\r\n" * 20)
    assert await c.closed()
    c2 = await raw()
    await c2.cmd("NOOP", R.OK)


async def test_smtps_plaintext_client_is_dropped(smtp, raw):
    c = await raw("smtps", greet=False)
    await c.send("EHLO c\r\n")
    assert await c.closed()
    c2 = await raw("smtps", tls=ssl._create_unverified_context())
    await c2.cmd("NOOP", R.OK)


async def test_tls_security_levels_on_port25(smtp_factory, client_tls):
    from tests.smtp.conftest import RawClient

    h = await smtp_factory(smtpd_tls_security_level="encrypt")
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.TLS_REQUIRED)
    await c.cmd("STARTTLS", R.STARTTLS_GO)
    await c.starttls(client_tls)
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    h2 = await smtp_factory(smtpd_tls_security_level="none")
    c = await RawClient.connect(h2.port())
    await c.expect("220 *")
    await c.send("EHLO c\r\n")
    assert not any("STARTTLS" in ln for ln in await c.reply())
    await c.cmd("STARTTLS", R.NOT_IMPLEMENTED)
