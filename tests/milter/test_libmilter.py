"""Every milter action over real sockets: smtplib → pymailsrv → the libmilter test milter
(libmilter_app.py), checked in the delivered Maildir file, the queue and the log."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.test_pipeline_smtp import messages, send


def message(subject: str, extra: bytes = b"", body: bytes = b"body line\r\n") -> bytes:
    return (b"From: someone@remote.example\r\nTo: alice@example.com\r\nSubject: " + subject.encode()
            + b"\r\nMessage-ID: <m1@remote.example>\r\n" + extra + b"\r\n" + body)


def header_block(mail: bytes) -> list[bytes]:
    return mail.split(b"\n\n", 1)[0].split(b"\n")


async def test_headers_added_inserted_changed_and_deleted(stack_factory: Any, libmilter: Callable[..., str]) -> None:
    stack = await stack_factory(smtpd_milters=libmilter())
    extra = b"X-Second: one\r\nX-Second: two\r\nX-Delete-Me: gone\r\n"
    code, _ = await asyncio.to_thread(send, stack.port(), message("add change delete", extra))
    assert code == 250
    [mail] = await stack.wait_for_mail("alice@example.com")
    head = header_block(mail)
    assert head[:3] == [b"Return-Path: <someone@remote.example>", b"Delivered-To: alice@example.com",
                        b"X-Inserted: at the top"]  # index 0: above our Received:, which the milter saw
    assert head[3].startswith(b"Received: from client.remote.example")
    assert b"Subject: changed by libmilter" in head and b"X-Second: one" in head
    assert b"X-Second: second one changed" in head
    assert not any(h.startswith(b"X-Delete-Me") for h in head)
    assert head[-4:] == [b"X-test-Body-Bytes: 11", b"X-Added: appended by libmilter", b"X-Folded: first line",
                         b"\tsecond line"]
    assert b"X-Folded: first line\n\tsecond line\n" in mail
    assert mail.endswith(b"\n\nbody line\n")


async def test_body_replaced_sender_changed_recipients_added_and_deleted(stack_factory: Any,
                                                                          libmilter: Callable[..., str]) -> None:
    stack = await stack_factory(smtpd_milters=libmilter())
    code, _ = await asyncio.to_thread(send, stack.port(), message("body from addrcpt delrcpt"))
    assert code == 250
    [mail] = await stack.wait_for_mail("bob@example.com")
    assert mail.startswith(b"Return-Path: <changed-sender@example.org>\nDelivered-To: bob@example.com\n")
    assert mail.endswith(b"\n\nThe body was replaced.\nSecond line.\n")
    await stack.queue.wait_idle()
    assert stack.maildir("alice@example.com") == []


async def test_quarantine_holds_the_message(stack_factory: Any, libmilter: Callable[..., str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    stack = await stack_factory(smtpd_milters=libmilter())
    code, text = await asyncio.to_thread(send, stack.port(), message("quarantine"))
    assert code == 250
    queue_id = text.decode().rsplit(" ", 1)[1]
    assert stack.queue.entries[queue_id].state == "hold"
    assert messages(caplog, f"{queue_id}: milter-hold: END-OF-MESSAGE from unknown[127.0.0.1]: "
                            "suspicious, says libmilter; from=<someone@remote.example>")
    assert stack.maildir("alice@example.com") == []


async def test_refusals_at_each_command(stack_factory: Any, libmilter: Callable[..., str],
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    # the client may relay, so that recipients elsewhere pass the restrictions and reach the milter
    stack = await stack_factory(smtpd_milters=libmilter(), mynetworks="127.0.0.0/8")

    def dialogue() -> list[tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", stack.port(), timeout=30) as c:
            c.ehlo("client.remote.example")
            out = [c.mail("reject-mail@remote.example"), c.mail("tempfail-mail@remote.example"),
                   c.mail("someone@remote.example"), c.rcpt("reject-rcpt@remote.example"),
                   c.rcpt("alice@example.com"), c.data(message("reject"))]
            out.append(c.mail("someone@remote.example"))
            out += [c.rcpt("alice@example.com"), c.data(message("tempfail"))]
            out += [c.mail("someone@remote.example"), c.rcpt("alice@example.com"), c.data(message("discard"))]
            out += [c.mail("someone@remote.example"), c.rcpt("alice@example.com"),
                    c.rcpt("discard-rcpt@remote.example"), c.data(message("plain"))]
            return out

    replies = await asyncio.to_thread(dialogue)
    assert replies[0] == (550, b"5.7.1 Sender refused by libmilter\n5.7.1 second line")  # multi-line
    assert replies[1] == (451, b"4.7.1 Service unavailable - try again later")
    assert replies[3] == (550, b"5.7.1 Recipient refused by libmilter")
    assert replies[4][0] == 250
    assert replies[5] == (554, b"5.7.1 Message refused by libmilter")
    assert replies[8] == (451, b"4.7.1 Service unavailable - try again later")
    assert replies[11][0] == 250  # discarded: accepted and dropped
    assert replies[14][0] == 250 and replies[15][0] == 250  # a recipient's discard drops the whole message
    await stack.queue.wait_idle()
    assert stack.maildir("alice@example.com") == []
    assert messages(caplog, "NOQUEUE: milter-reject: MAIL from unknown[127.0.0.1]: 550-5.7.1 Sender refused")
    assert messages(caplog, "NOQUEUE: milter-reject: RCPT from unknown[127.0.0.1]: 550 5.7.1 Recipient refused "
                            "by libmilter; from=<someone@remote.example> to=<reject-rcpt@remote.example>")
    assert messages(caplog, "milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 554 5.7.1 Message refused")
    assert len(messages(caplog, ": milter-discard: ")) == 2


async def test_macros_as_postfix_sends_them(stack_factory: Any, libmilter: Callable[..., str]) -> None:
    stack = await stack_factory(smtpd_milters=libmilter(), myhostname="mx.example.test")
    code, text = await asyncio.to_thread(send, stack.port(), message("macros"))
    assert code == 250
    queue_id = text.decode().rsplit(" ", 1)[1]
    [mail] = await stack.wait_for_mail("alice@example.com")
    seen = {h.split(b"=", 1)[0][len(b"X-Macro: "):].decode(): h.split(b"=", 1)[1].decode()
            for h in header_block(mail) if h.startswith(b"X-Macro: ")}
    assert seen["j"] == "mx.example.test" and seen["{daemon_name}"] == "mx.example.test"
    assert seen["v"] == "pymailsrv"
    assert seen["_"] == "unknown [127.0.0.1]"
    assert seen["i"] == queue_id
    assert seen["{mail_addr}"] == "someone@remote.example" and seen["{rcpt_addr}"] == "alice@example.com"
    assert seen["connect"] == "unknown 127.0.0.1" and seen["helo"] == "client.remote.example"
    assert "{auth_authen}" not in seen  # not logged in: not defined
    assert seen["{client_addr}"] == "127.0.0.1"  # not a default: the milter asked for it at end of header


async def test_milters_in_order_each_sees_the_previous_ones_changes(stack_factory: Any,
                                                                     libmilter: Callable[..., str]) -> None:
    stack = await stack_factory(smtpd_milters=f"{libmilter('first')}, {libmilter('second')}")
    code, _ = await asyncio.to_thread(send, stack.port(), message("chain add"))
    assert code == 250
    [mail] = await stack.wait_for_mail("alice@example.com")
    head = header_block(mail)
    first_saw = next(h for h in head if h.startswith(b"X-first-Saw: "))
    second_saw = next(h for h in head if h.startswith(b"X-second-Saw: "))
    assert b"X-Added" not in first_saw and b"X-first-Body-Bytes" not in first_saw
    assert b"X-Inserted" in second_saw and b"X-first-Saw" in second_saw and b"X-first-Body-Bytes" in second_saw
    assert head.count(b"X-Added: appended by libmilter") == 2


async def test_skip_and_progress(stack_factory: Any, libmilter: Callable[..., str]) -> None:
    stack = await stack_factory(smtpd_milters=libmilter(), milter_content_timeout="2s")
    big = b"".join(b"%07d line of a long body\r\n" % i for i in range(8000))  # > 3 body chunks
    code, _ = await asyncio.to_thread(send, stack.port(), message("skip", body=big))
    assert code == 250
    code, _ = await asyncio.to_thread(send, stack.port(), message("progress"))  # 3.2s, with progress
    assert code == 250
    delivered = await stack.wait_for_mail("alice@example.com", 2)
    [first] = [m for m in delivered if b"Subject: skip" in m]  # Maildir names need not sort by arrival
    [second] = [m for m in delivered if b"Subject: progress" in m]
    assert b"X-test-Body-Calls: 1\n" in first and b"X-test-Body-Bytes: 65535\n" in first
    assert first.endswith(b"\n\n" + big.replace(b"\r\n", b"\n"))  # the rest was not sent to the milter, but kept
    assert b"X-test-Body-Bytes: 11\n" in second


@pytest.mark.parametrize(("action", "reply"), [
    ("tempfail", (451, b"4.7.1 Service unavailable - try again later")),
    ("reject", (550, b"5.5.0 Service unavailable")),
    ("accept", (250, None)),
    ("quarantine", (250, None)),
])
async def test_unreachable_milter_follows_milter_default_action(
        stack_factory: Any, caplog: pytest.LogCaptureFixture, tmp_path: Any, action: str,
        reply: tuple[int, bytes | None]) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    dead = f"unix:{tmp_path}/nobody.sock"
    stack = await stack_factory(smtpd_milters=dead, milter_default_action=action)
    code, text = await asyncio.to_thread(send, stack.port(), message("plain"))
    assert code == reply[0]
    if reply[1] is not None:
        assert text == reply[1]
    [failure] = messages(caplog, f"connect to Milter service {dead}: ")
    assert f"; default action {action}" in failure
    await stack.queue.wait_idle()
    if action == "accept":
        assert len(await stack.wait_for_mail("alice@example.com")) == 1
    elif action == "quarantine":
        assert stack.queue.entries[text.decode().rsplit(" ", 1)[1]].state == "hold"
    else:
        assert stack.maildir("alice@example.com") == []


async def test_per_milter_options_override_the_parameters(stack_factory: Any, tmp_path: Any,
                                                          libmilter: Callable[..., str]) -> None:
    dead = f"unix:{tmp_path}/nobody.sock"
    stack = await stack_factory(smtpd_milters=f"{{ {dead}, default_action = accept }}, {libmilter()}")
    code, _ = await asyncio.to_thread(send, stack.port(), message("add"))
    assert code == 250
    [mail] = await stack.wait_for_mail("alice@example.com")
    assert b"X-Added: appended by libmilter" in mail


async def test_a_silent_milter_times_out_without_holding_up_other_sessions(
        stack_factory: Any, libmilter: Callable[..., str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    where = libmilter()
    milter_log = Path(where.removeprefix("unix:")).parent / "milter.log"
    stack = await stack_factory(smtpd_milters=where, milter_content_timeout="4s")
    slow = asyncio.create_task(asyncio.to_thread(send, stack.port(), message("sleep")))
    for _ in range(400):  # until the slow session waits for the milter's end-of-message reply
        if "sleeping at end of message" in milter_log.read_text():
            break
        await asyncio.sleep(0.05)
    fast = await asyncio.to_thread(send, stack.port(), message("plain"))
    assert fast[0] == 250
    assert not slow.done()  # served while the other session still waited: not behind it
    assert await slow == (451, b"4.7.1 Service unavailable - try again later")
    assert messages(caplog, "can't read SMFIC_BODYEOB reply packet header: Connection timed out")


async def test_a_milter_that_never_negotiates(stack_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stack = await stack_factory(smtpd_milters=f"inet:127.0.0.1:{port}", milter_connect_timeout="0.5s")
        code, text = await asyncio.to_thread(send, stack.port(), message("plain"))
        assert (code, text) == (451, b"4.7.1 Service unavailable - try again later")
        assert messages(caplog, f"milter inet:127.0.0.1:{port}: can't read SMFIC_OPTNEG reply packet header: "
                                "Connection timed out")
    finally:
        for w in accepted:
            w.close()
        server.close()


async def test_non_smtpd_milters_see_the_mail_the_server_generates(stack_factory: Any,
                                                                   libmilter: Callable[..., str]) -> None:
    # a message too big for bob's mailbox bounces (tests/pipeline/test_pipeline_bounce.py)
    stack = await stack_factory(non_smtpd_milters=libmilter("bounces"), virtual_mailbox_limit="20000")
    big = message("too big", body=b"x" * 60_000 + b"\r\n").replace(b"To: alice@", b"To: bob@")
    code, _ = await asyncio.to_thread(send, stack.port(), big, "alice@example.com", ("bob@example.com",))
    assert code == 250
    [bounce] = await stack.wait_for_mail("alice@example.com")
    head = header_block(bounce)
    assert b"Subject: Undelivered Mail Returned to Sender" in head
    assert any(h.startswith(b"X-bounces-Body-Bytes: ") for h in head)  # the milter saw it whole
    assert b"X-Folded" not in bounce


async def test_smtpd_milter_maps_choose_the_milters_per_client(stack_factory: Any, tmp_path: Any,
                                                               libmilter: Callable[..., str]) -> None:
    dead = f"unix:{tmp_path}/nobody.sock"
    (tmp_path / "milter_map.cidr").write_text(f"192.0.2.0/24 DISABLE\n127.0.0.0/8 {libmilter()}\n")
    # smtpd_milters names a dead milter; the map gives this client a working one instead
    stack = await stack_factory(smtpd_milters=dead, smtpd_milter_maps=f"cidr:{tmp_path}/milter_map.cidr")
    code, _ = await asyncio.to_thread(send, stack.port(), message("add"))
    assert code == 250
    [mail] = await stack.wait_for_mail("alice@example.com")
    assert b"X-Added: appended by libmilter" in mail


async def test_smtpd_milter_maps_disable_the_milters_for_a_client(stack_factory: Any, tmp_path: Any) -> None:
    dead = f"unix:{tmp_path}/nobody.sock"
    stack = await stack_factory(smtpd_milters=dead, smtpd_milter_maps="inline:{ 127.0.0.1=DISABLE }")
    code, _ = await asyncio.to_thread(send, stack.port(), message("plain"))
    assert code == 250  # the dead milter was not asked
    assert len(await stack.wait_for_mail("alice@example.com")) == 1


async def test_a_bad_milter_map_value_falls_back_to_smtpd_milters(stack_factory: Any, libmilter: Callable[..., str],
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    stack = await stack_factory(smtpd_milters=libmilter(), smtpd_milter_maps="inline:{ 127.0.0.1=nowhere }")
    code, _ = await asyncio.to_thread(send, stack.port(), message("add"))
    assert code == 250
    [mail] = await stack.wait_for_mail("alice@example.com")
    assert b"X-Added: appended by libmilter" in mail
    assert messages(caplog, "smtpd_milter_maps: bad value for 127.0.0.1: bad milter socket 'nowhere'")
