"""Stages added through smtpd_pipeline, over real sockets: a header rewritten in the delivered
Maildir file, refusals the client sees, a failing stage under each default action, time limits,
and the abort/close events."""

from __future__ import annotations

import asyncio
import smtplib
from typing import Any

import pytest

from pymailsrv.errors import ConfigError
from tests.pipeline.conftest import DEFAULT, STAGES

MSG = b"From: someone@remote.example\r\nSubject: hello\r\nMessage-ID: <p1@remote.example>\r\n\r\nbody\r\n"


def send(port: int, data: bytes = MSG, sender: str = "someone@remote.example",
         rcpts: tuple[str, ...] = ("alice@example.com",)) -> tuple[int, bytes]:
    """One message; the reply to the final dot (or to the first refused command)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.remote.example")
        code, text = c.mail(sender)
        if code != 250:
            return code, text
        for rcpt in rcpts:
            code, text = c.rcpt(rcpt)
            if code != 250:
                return code, text
        return c.data(data)


def messages(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


async def test_stage_rewrites_a_header_of_delivered_mail(stack_factory: Any) -> None:
    stack = await stack_factory(smtpd_pipeline=f"{DEFAULT}, {STAGES}tag_subject")
    code, _ = await asyncio.to_thread(send, stack.port())
    assert code == 250
    [mail] = await stack.wait_for_mail("alice@example.com")
    assert b"\nSubject: [ext] hello\n" in mail and b"Subject: hello" not in mail
    assert b"\nX-Tagged: by smtpd stage\n" in mail
    assert b"Received: from client.remote.example" in mail  # cleanup still ran before it


async def test_stage_refuses_a_sender_and_a_message(stack_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    stack = await stack_factory(smtpd_pipeline=f"{DEFAULT}, {STAGES}reject_forbidden")
    code, text = await asyncio.to_thread(send, stack.port(), sender="spammer@remote.example")
    assert (code, text) == (553, b"5.7.1 <spammer@remote.example>: Sender refused by a stage")
    forbidden = MSG.replace(b"Subject: hello", b"Subject: something Forbidden")
    code, text = await asyncio.to_thread(send, stack.port(), forbidden)
    assert (code, text) == (550, b"5.7.1 Forbidden subject")
    code, _ = await asyncio.to_thread(send, stack.port())
    assert code == 250
    [mail] = await stack.wait_for_mail("alice@example.com")
    assert b"Subject: hello" in mail
    [line] = messages(caplog, "milter-reject: END-OF-MESSAGE")
    assert line.endswith(": milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 550 5.7.1 Forbidden subject; "
                         "from=<someone@remote.example> proto=ESMTP helo=<client.remote.example>")
    assert messages(caplog, "NOQUEUE: milter-reject: MAIL from")


@pytest.mark.parametrize(("params", "reply"), [
    ({"smtpd_pipeline": f"{DEFAULT}, {STAGES}explode"}, (451, b"4.3.5 Server configuration error")),
    ({"smtpd_pipeline": f"{DEFAULT}, {{ {STAGES}explode, default_action = reject }}"},
     (550, b"5.7.1 Command rejected")),
    ({"smtpd_pipeline": f"{DEFAULT}, {{ {STAGES}explode, default_action = accept }}"}, (250, None)),
    ({"smtpd_pipeline": f"{DEFAULT}, {STAGES}explode", "pipeline_default_action": "accept"}, (250, None)),
    ({"smtpd_pipeline": f"{DEFAULT}, {{ {STAGES}explode, default_action = quarantine }}"}, (250, None)),
], ids=["tempfail-by-default", "reject", "accept", "accept-by-parameter", "quarantine"])
async def test_failing_stage_follows_its_default_action(stack_factory: Any, caplog: pytest.LogCaptureFixture,
                                                        params: dict[str, str], reply: tuple[int, Any]) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    stack = await stack_factory(**params)
    code, text = await asyncio.to_thread(send, stack.port())
    assert code == reply[0]
    if reply[1] is not None:
        assert text == reply[1]
    failures = messages(caplog, "pipeline stage explode failed")
    assert len(failures) == 1  # logged once per failure, with what failed
    assert "at END-OF-MESSAGE from unknown[127.0.0.1]: RuntimeError: the stage broke; default action" in failures[0]
    await stack.queue.wait_idle()
    delivered = stack.maildir("alice@example.com")
    if "quarantine" in str(params):
        assert not delivered
        queue_id = text.decode().rsplit(" ", 1)[1]
        assert stack.queue.entries[queue_id].state == "hold"
        hold = f"{queue_id}: milter-hold: END-OF-MESSAGE from unknown[127.0.0.1]: stage explode failed"
        assert messages(caplog, hold)
    elif code == 250:
        assert len(await stack.wait_for_mail("alice@example.com")) == 1
    else:
        assert not delivered


@pytest.mark.parametrize(("action", "code"), [("tempfail", 451), ("accept", 250)])
async def test_stage_out_of_time_follows_its_default_action(stack_factory: Any, caplog: pytest.LogCaptureFixture,
                                                            action: str, code: int) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    sleepy = f"{{ {STAGES}sleepy, timeout=0.2s, default_action={action} }}"
    stack = await stack_factory(smtpd_pipeline=f"{DEFAULT}, {sleepy}")

    def rcpt() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", stack.port(), timeout=10) as c:
            c.mail("someone@remote.example")
            return c.rcpt("alice@example.com")

    assert (await asyncio.to_thread(rcpt))[0] == code
    [failure] = messages(caplog, "pipeline stage sleepy failed")
    assert "at RCPT from unknown[127.0.0.1]: timed out" in failure


async def test_stages_hear_abort_and_close(stack_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    stack = await stack_factory(smtpd_pipeline=f"{STAGES}recorder, {DEFAULT}")

    def dialogue() -> None:
        with smtplib.SMTP("127.0.0.1", stack.port(), timeout=10) as c:
            c.ehlo("client.remote.example")
            c.mail("first@remote.example")
            c.rset()  # aborts the first transaction
            c.sendmail("second@remote.example", ["alice@example.com"], MSG)
            c.mail("third@remote.example")  # left unfinished by QUIT

    await asyncio.to_thread(dialogue)
    for _ in range(100):
        if messages(caplog, "recorder: close"):
            break
        await asyncio.sleep(0.02)
    events = [m.split(" ", 2)[1:] for m in messages(caplog, "recorder: ")]
    assert [e[0] for e in events] == ["connect", "helo", "mail", "abort", "mail", "rcpt", "data", "message",
                                      "mail", "abort", "close"]
    assert events[3] == ["abort", "first@remote.example"] and events[9] == ["abort", "third@remote.example"]


async def test_reinjected_mail_skips_restrictions_and_the_content_filter(stack_factory: Any) -> None:
    """What the restriction and content_filter stages skip for mail the filter hands back."""
    stack = await stack_factory(reinject_listen="127.0.0.1:0", mynetworks="127.0.0.0/8",
                                content_filter="smtp:[127.0.0.1]:9", smtpd_pipeline=f"{DEFAULT}, {STAGES}tag_subject")
    code, _ = await asyncio.to_thread(send, stack.port("reinject"), rcpts=("alice@example.com",))
    assert code == 250
    [mail] = await stack.wait_for_mail("alice@example.com")  # delivered, not sent to the filter again
    assert b"Subject: [ext] hello" in mail and b"X-Tagged: by reinject stage" in mail


async def test_smtpd_pipeline_without_restrictions_is_refused(stack_factory: Any) -> None:
    """Without the restrictions stage anyone could relay: start-up refuses, as Postfix refuses to
    start without a relay guard."""
    with pytest.raises(ConfigError, match="smtpd_pipeline: the restrictions stage is required"):
        await stack_factory(smtpd_pipeline="header_checks, cleanup, content_filter")
