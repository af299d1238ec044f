"""pipeline.message: the header block split on demand, the header edits stages make, line ends,
and the guard against header injection."""

from __future__ import annotations

import pytest

from pymailsrv.pipeline.message import Message, header_block

CRLF_MSG = b"Subject: a\r\n folded\r\nFrom: x@y\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\nbody\r\nX: not a header\r\n"
LF_MSG = b"From: MAILER-DAEMON\nSubject: notice\n\nbody\n"


def test_header_block_crlf_and_lf() -> None:
    assert header_block(CRLF_MSG) == ([b"Subject: a\r\n folded\r\n", b"From: x@y\r\n", b"X-Dup: 1\r\n",
                                       b"X-Dup: 2\r\n"], CRLF_MSG.index(b"\r\n\r\n") + 2)
    assert header_block(LF_MSG) == ([b"From: MAILER-DAEMON\n", b"Subject: notice\n"], LF_MSG.index(b"\n\n") + 1)
    assert header_block(b"no header line\r\n") == ([], 0)
    assert header_block(b"A: 1") == ([b"A: 1"], 4)


def test_untouched_message_is_the_same_bytes() -> None:
    msg = Message(CRLF_MSG)
    assert msg.as_bytes() is CRLF_MSG


def test_reading_and_editing_headers() -> None:
    msg = Message(CRLF_MSG)
    assert msg.get("subject") == "a\n folded"
    assert msg.values("X-Dup") == ["1", "2"] and msg.get("X-None") is None
    msg.change_header("X-Dup", "two", occurrence=2)
    msg.change_header("X-New", "added")  # none to change: added at the end
    msg.insert_header(0, "X-Top", "first")
    assert msg.delete_header("From") and not msg.delete_header("From")
    msg.change_header("Subject", msg.get("Subject") or "")  # folding survives a round trip
    assert msg.as_bytes() == (b"X-Top: first\r\nSubject: a\r\n folded\r\nX-Dup: 1\r\nX-Dup: two\r\n"
                              b"X-New: added\r\n\r\nbody\r\nX: not a header\r\n")


def test_body_and_replace_body() -> None:
    msg = Message(CRLF_MSG)
    assert msg.body == b"body\r\nX: not a header\r\n"
    msg.replace_body(b"new body\r\n")
    assert msg.as_bytes().endswith(b"X-Dup: 2\r\n\r\nnew body\r\n")


def test_added_headers_follow_the_message_line_ends() -> None:
    msg = Message(LF_MSG)
    msg.add_header("X-Tag", "yes\n and more")
    assert msg.as_bytes() == b"From: MAILER-DAEMON\nSubject: notice\nX-Tag: yes\n and more\n\nbody\n"


@pytest.mark.parametrize(("name", "value"), [
    ("X-Bad", "a\r\nFrom: ceo@example.com"), ("X-Bad", "a\nBcc: x@y"), ("X-Bad", "a\rb"), ("X-Bad", "a\0"),
    ("Bad Name", "x"), ("", "x"), ("X:Y", "x"),
])
def test_no_header_injection(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Message(CRLF_MSG).add_header(name, value)
