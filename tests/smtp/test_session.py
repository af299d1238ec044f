"""Session behaviour over the wire: log lines, restriction stages and their effects, the
reinject listener, header_checks, listener start-up errors."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from pymailsrv.errors import ConfigError
from pymailsrv.policy.base import Decision
from pymailsrv.smtp import replies as R
from tests.smtp.conftest import RawClient, TinyRestrictions
from tests.smtp.test_cleanup import RegexpTable


async def send_one(port: int, rcpts: list[str], body: str = "Subject: t\r\n\r\nbody\r\n",
                   quit_: bool = True) -> RawClient:
    c = await RawClient.connect(port)
    await c.expect("220 *")
    await c.cmd("EHLO client.test", "250 *")
    await c.cmd("MAIL FROM:<a@remote.test>", R.MAIL_OK)
    for r in rcpts:
        await c.cmd(f"RCPT TO:<{r}>", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    await c.send(body + ".\r\n")
    await c.expect("250 2.0.0 Ok: queued as *")
    if quit_:
        await c.cmd("QUIT", R.QUIT_OK)
        await c.closed()
    return c


async def test_postfix_log_lines(smtp, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    await send_one(smtp.port(), ["bob@example.test"], "Message-ID: <m1@client.test>\r\n\r\nx\r\n")
    await asyncio.sleep(0.05)
    msgs = [(r.name, r.getMessage()) for r in caplog.records if r.name != "pymailsrv.smtpd" or
            "listening" not in r.getMessage()]
    assert msgs == [
        ("pymailsrv.smtpd", "connect from unknown[127.0.0.1]"),
        ("pymailsrv.smtpd", "A0000: client=unknown[127.0.0.1]"),
        ("pymailsrv.cleanup", "A0000: message-id=<m1@client.test>"),
        ("pymailsrv.smtpd",
         "disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"),
    ]


async def test_reject_counts_in_disconnect_line(smtp, raw, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    c = await raw()
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<x@far.test>", "554 5.7.1 <x@far.test>: Relay access denied")
    await c.cmd("QUIT", R.QUIT_OK)
    await c.closed()
    await asyncio.sleep(0.05)
    assert ("disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"
            in [r.getMessage() for r in caplog.records])


async def test_sasl_in_client_line_and_received(smtp_factory, caplog, client_tls):
    import smtplib

    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = await smtp_factory(smtpd_sasl_authenticated_header="yes")

    def run() -> None:
        with smtplib.SMTP_SSL("127.0.0.1", h.port("smtps"), timeout=5, context=client_tls) as c:
            c.login("alice@example.test", "wonderland")
            c.sendmail("alice@example.test", ["x@far.test", "y@far.test"], b"Subject: s\r\n\r\nb\r\n")

    await asyncio.to_thread(run)
    assert any(r.getMessage().endswith(": client=unknown[127.0.0.1], sasl_method=PLAIN, "
                                       "sasl_username=alice@example.test") for r in caplog.records)
    content = h.queue.messages[0][1]
    assert b"\t(Authenticated sender: alice@example.test)\r\n" in content
    assert b"for <" not in content.split(b"\r\n\r\n")[0]  # two recipients: no "for"


async def test_every_stage_is_checked(smtp):
    await send_one(smtp.port(), ["bob@example.test"])
    assert smtp.restrictions.stages == ["connect", "helo", "mail", "rcpt", "data", "end_of_data"]


@pytest.mark.parametrize("effects,check", [
    ((("HOLD", ""),), lambda env, content: env.hold),
    ((("FILTER", "smtp:[127.0.0.1]:10025"),), lambda env, content: env.filter == "smtp:[127.0.0.1]:10025"),
    ((("REDIRECT", "trap@example.test"),),
     lambda env, content: [(r.address, r.original) for r in env.recipients]
     == [("trap@example.test", "bob@example.test")]),
    ((("PREPEND", "X-Seen: yes"),), lambda env, content: b"\r\nX-Seen: yes\r\nSubject: t" in content),
])
async def test_access_effects(smtp_factory, effects, check):
    h = await smtp_factory(restrictions=TinyRestrictions(effects={"bob@example.test": effects}))
    await send_one(h.port(), ["bob@example.test"])
    env, content = h.queue.messages[0]
    assert check(env, content)


async def test_discard_effect_answers_250_but_queues_nothing(smtp_factory, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = await smtp_factory(restrictions=TinyRestrictions(effects={"connect": (("DISCARD", ""),)}))
    await send_one(h.port(), ["bob@example.test"])
    assert h.queue.messages == []
    assert any(": discard: END-OF-MESSAGE from unknown[127.0.0.1]" in r.getMessage() for r in caplog.records)


class ConnectReject(TinyRestrictions):
    async def check(self, stage, state):  # type: ignore[no-untyped-def]
        if stage == "connect":
            return Decision("reject", 554, "5.7.1",
                            f"<unknown[{state.client_address}]>: Client host rejected: Access denied")
        return await super().check(stage, state)


async def test_connect_refusal_answers_later_commands(smtp_factory):
    h = await smtp_factory(restrictions=ConnectReject())
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.cmd("EHLO c", "554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: Access denied")
    await c.cmd("MAIL FROM:<a@b.test>", "554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: Access denied")
    await c.cmd("NOOP", R.OK)
    await c.cmd("QUIT", R.QUIT_OK)


async def test_header_checks_over_the_wire(smtp_factory, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    table = RegexpTable([(r"^Subject:.*viagra", "REJECT spam is not welcome"), (r"^X-Spam:", "IGNORE")])
    h = await smtp_factory(header_checks=(table,))
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    await c.send("Subject: cheap viagra\r\n\r\nx\r\n.\r\n")
    await c.expect("550 5.7.1 spam is not welcome")
    await send_one(h.port(), ["bob@example.test"], "X-Spam: yes\r\nSubject: fine\r\n\r\nx\r\n")
    assert len(h.queue.messages) == 1
    assert b"X-Spam" not in h.queue.messages[0][1]
    assert any("reject: header Subject: cheap viagra from unknown[127.0.0.1]" in r.getMessage()
               for r in caplog.records)


async def test_reinject_listener(smtp_factory):
    h = await smtp_factory(reinject_listen="127.0.0.1:0", mynetworks="127.0.0.0/8")
    await send_one(h.port("reinject"), ["x@far.test"])
    env, _ = h.queue.messages[0]
    assert env.skip_filter
    assert h.restrictions.stages == []  # already checked before the filter
    h2 = await smtp_factory(reinject_listen="127.0.0.1:0")  # 127.0.0.1 not in mynetworks
    c = await RawClient.connect(h2.port("reinject"))
    await c.expect("421 4.7.0 mx.example.test Error: access denied for 127.0.0.1")
    assert await c.closed()


async def test_port_in_use_is_a_config_error(smtp_factory):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=rf"smtpd_listen: cannot listen on 127.0.0.1:{port}: "
                                              "address already in use"):
            await smtp_factory(smtpd_listen=f"127.0.0.1:{port}", submission_listen="", smtps_listen="")
    finally:
        sock.close()


async def test_submission_without_certificate_is_a_config_error(smtp_factory):
    with pytest.raises(ConfigError, match="submission needs a certificate"):
        await smtp_factory(tls_cert_file="", tls_key_file="", smtps_listen="")


async def test_shutdown_closes_idle_sessions_and_finishes_busy_ones(smtp_factory):
    h = await smtp_factory()
    server = next(s for s in h.servers if s.kind == "smtpd")
    idle = await RawClient.connect(server.port)
    await idle.expect("220 *")
    busy = await RawClient.connect(server.port)
    await busy.expect("220 *")
    await busy.cmd("EHLO c", "250 *")
    await busy.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await busy.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
    await busy.cmd("DATA", R.DATA_GO)
    await busy.send("Subject: in flight\r\n\r\n")
    await asyncio.sleep(0.05)
    server.close()
    await idle.expect("421 4.3.2 mx.example.test Service shutting down, closing transmission channel")
    assert await idle.closed()
    await busy.send("still arriving\r\n.\r\n")
    await busy.expect("250 2.0.0 Ok: queued as *")
    assert await busy.closed()
    await server.wait_closed(timeout=2)
    assert not server.spec.sessions
    assert len(h.queue.messages) == 1


async def test_peername_lookup(smtp_factory, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = await smtp_factory(smtpd_peername_lookup="yes")
    await send_one(h.port(), ["bob@example.test"])
    env, content = h.queue.messages[0]
    try:  # what this machine's resolver says (localhost here; maybe nothing in a container)
        name = socket.getnameinfo(("127.0.0.1", 0), socket.NI_NAMEREQD)[0]
        confirmed = "127.0.0.1" in {i[4][0] for i in socket.getaddrinfo(name, None)}
    except OSError:
        name, confirmed = "", False
    expected = name if confirmed else "unknown"
    assert env.client_name == expected
    assert f"Received: from client.test ({expected} [127.0.0.1])".encode() in content
    assert f"connect from {expected}[127.0.0.1]" in [r.getMessage() for r in caplog.records]


async def test_a_helo_name_never_reaches_the_log_raw(smtp_factory, caplog):
    """A HELO name with control characters is either refused where it enters or logged escaped
    (pymailsrv.log.escape_for_log) in the NOQUEUE line that names it."""
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = await smtp_factory(message_size_limit="1000")
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.send("EHLO evil\x1b[2Jhost\x08\r\n")
    accepted = (await c.reply())[-1].startswith("250")
    if accepted:
        await c.cmd("MAIL FROM:<a@remote.test> SIZE=5000", R.SIZE_EXCEEDED)
    await c.cmd("QUIT", R.QUIT_OK)
    await c.close()
    lines = [r.getMessage() for r in caplog.records]
    assert not any("\x1b" in line or "\x08" in line for line in lines)
    if accepted:
        assert any(line.startswith("NOQUEUE: reject: MAIL from ") and line.endswith(
            "from=<a@remote.test> proto=ESMTP helo=<evil\\033[2Jhost\\010>") for line in lines)
