"""The milter conversation on the wire, against a scripted milter (scripted.py): the steps a milter
declined are not sent and replies it said it will not send are not awaited; broken milters get
milter_default_action, never a traceback or a hung session."""

from __future__ import annotations

import asyncio
import smtplib
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pymailsrv.milter import protocol as P
from tests.milter.scripted import CONTINUE, ScriptedMilter, optneg_reply, polite, raw
from tests.milter.test_libmilter import message
from tests.pipeline.test_pipeline_smtp import messages, send

Factory = Callable[..., Any]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Any]]:
    started: list[ScriptedMilter] = []

    async def start(answer: Any = polite) -> tuple[ScriptedMilter, str]:
        milter = ScriptedMilter(answer)
        started.append(milter)
        return milter, await milter.start()

    yield start
    for milter in started:
        await milter.stop()


def send_any(port: int, data: bytes) -> tuple[int, bytes]:
    try:
        return send(port, data)
    except smtplib.SMTPDataError as exc:  # refused at DATA
        return exc.smtp_code, exc.smtp_error


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_declined_steps_are_not_sent_and_unsent_replies_not_awaited(stack_factory: Factory,
                                                                          scripted: Any) -> None:
    steps = P.P_NOHELO | P.P_NOHDRS | P.P_NOBODY | P.P_NR_MAIL | P.P_NR_RCPT | P.P_NR_DATA

    def answer(command: bytes, data: bytes) -> list[bytes] | None:
        if command == b"O":
            return [optneg_reply(steps=steps)]
        if command in (b"M", b"R", b"T"):  # it said it would not answer these
            return []
        return polite(command, data)

    milter, where = await scripted(answer)
    stack = await stack_factory(smtpd_milters=where)
    code, _ = await asyncio.to_thread(send, stack.port(), message("plain"))
    assert code == 250
    await until(lambda: b"Q" in milter.commands())
    assert [c for c in milter.commands() if c != b"D"] == [b"O", b"C", b"M", b"R", b"T", b"N", b"E", b"Q"]
    assert len(await stack.wait_for_mail("alice@example.com")) == 1


async def test_accept_at_connect_ends_the_milters_part_in_the_session(stack_factory: Factory,
                                                                      scripted: Any) -> None:
    def answer(command: bytes, data: bytes) -> list[bytes] | None:
        return [raw(P.R_ACCEPT)] if command == b"C" else polite(command, data)

    milter, where = await scripted(answer)
    stack = await stack_factory(smtpd_milters=where)
    code, _ = await asyncio.to_thread(send, stack.port(), message("plain"))
    assert code == 250
    await until(lambda: b"Q" in milter.commands())
    assert [c for c in milter.commands() if c != b"D"] == [b"O", b"C", b"Q"]


def _reply_at(at: bytes, *replies: bytes) -> Callable[[bytes, bytes], list[bytes] | None]:
    def answer(command: bytes, data: bytes) -> list[bytes] | None:
        return list(replies) if command == at else polite(command, data)
    return answer


def _close_at(at: bytes) -> Callable[[bytes, bytes], list[bytes] | None]:
    def answer(command: bytes, data: bytes) -> list[bytes] | None:
        return None if command == at else polite(command, data)
    return answer


@pytest.mark.parametrize(("answer", "logged"), [
    (_reply_at(b"O", optneg_reply(version=1)), "milter protocol version 1 is not supported"),
    (_reply_at(b"O", optneg_reply(actions=0x3FF)), "milter asks for actions 0x3ff"),
    (_reply_at(b"M", raw(P.R_ADDHEADER, b"X-A\0b\0"), CONTINUE), "modification b'h' in reply to SMFIC_MAIL"),
    (_close_at(b"M"), "can't read SMFIC_MAIL reply packet header: Connection closed by peer"),
    (_reply_at(b"R", raw(P.R_REPLYCODE, b"250 2.0.0 fine\0")), "bad reply code '250 2.0.0 fine'"),
    (_reply_at(b"T", b"\0\0\0\0"), "bad packet length 0"),
    (_reply_at(b"E", raw(b"Z")), "unknown reply b'Z' to SMFIC_BODYEOB"),
    (_reply_at(b"E", raw(P.R_INSHEADER, b"\0\0")), "short header index"),
], ids=["old-version", "unoffered-actions", "modification-too-early", "closed", "not-a-refusal-code",
        "zero-length", "unknown-reply", "short-modification"])
async def test_a_broken_milter_gets_the_default_action(stack_factory: Factory, scripted: Any,
                                                       caplog: pytest.LogCaptureFixture, answer: Any,
                                                       logged: str) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    _, where = await scripted(answer)
    stack = await stack_factory(smtpd_milters=where)
    code, text = await asyncio.to_thread(send_any, stack.port(), message("plain"))
    assert (code, text) == (451, b"4.7.1 Service unavailable - try again later")
    [line] = messages(caplog, logged)
    assert line.endswith("; from unknown[127.0.0.1]; default action tempfail")
    assert not [r for r in caplog.records if r.exc_info]  # no traceback: an expected failure


async def test_after_a_failure_with_accept_the_session_goes_on_without_the_milter(
        stack_factory: Factory, scripted: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    milter, where = await scripted(_close_at(b"M"))
    stack = await stack_factory(smtpd_milters=f"{{ {where}, default_action = accept }}")

    def two_messages() -> list[tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", stack.port(), timeout=30) as c:
            return [c.sendmail("someone@remote.example", ["alice@example.com"], message(f"n{i}")) or (250, b"")
                    for i in range(2)]

    assert await asyncio.to_thread(two_messages) == [(250, b""), (250, b"")]
    assert len(await stack.wait_for_mail("alice@example.com", 2)) == 2
    assert milter.commands().count(b"O") == 1  # one connection per session, not tried again
    assert len(messages(caplog, "Connection closed by peer")) == 1


async def test_a_modification_that_was_not_negotiated_is_ignored(stack_factory: Factory, scripted: Any,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")

    def answer(command: bytes, data: bytes) -> list[bytes] | None:
        if command == b"O":
            return [optneg_reply(actions=P.F_CHGHDRS)]
        if command == b"E":
            return [raw(P.R_ADDHEADER, b"X-Sneaky\0yes\0"),
                    raw(P.R_CHGHEADER, struct.pack("!I", 1) + b"Subject\0new\0"), CONTINUE]
        return polite(command, data)

    _, where = await scripted(answer)
    stack = await stack_factory(smtpd_milters=where)
    code, _ = await asyncio.to_thread(send, stack.port(), message("old"))
    assert code == 250
    [mail] = await stack.wait_for_mail("alice@example.com")
    assert b"X-Sneaky" not in mail and b"\nSubject: new\n" in mail
    assert messages(caplog, "add_header was not negotiated; ignored")
