"""The message-bytes helpers every package shares: line endings, dot-stuffing, header end, and
the sanitiser for client text in headers we write."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pymailsrv.message.headers import printable
from pymailsrv.message.lines import body_start, crlf_size, dot_stuff, header_end, to_crlf, to_lf


def test_line_endings_lone_cr_is_no_line_end() -> None:
    assert to_crlf(b"a\nb\n") == b"a\r\nb\r\n"
    assert to_crlf(b"a\r\nb\nc\rd") == b"a\r\nb\r\nc\rd"
    assert to_crlf(b"no line end\r") == b"no line end\r"
    assert to_lf(b"a\r\nb\rc\n") == b"a\nb\rc\n"
    assert to_lf(b"plain") == b"plain"


@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n"]), max_size=60).map(b"".join))
def test_conversions_agree(data: bytes) -> None:
    wire = to_crlf(data)
    assert crlf_size(data) == len(wire)
    assert wire.count(b"\n") == wire.count(b"\r\n")  # every line end is CRLF
    assert wire.replace(b"\r\n", b"").count(b"\r") == data.replace(b"\r\n", b"").count(b"\r")  # lone CRs kept
    assert to_lf(wire).count(b"\n") == wire.count(b"\n")


def test_dot_stuff() -> None:
    assert dot_stuff(b".a\r\nb\r\n.\r\n") == b"..a\r\nb\r\n..\r\n"
    assert dot_stuff(b"no end") == b"no end\r\n"
    assert dot_stuff(b"") == b""
    assert dot_stuff(b"x\r.\r\n") == b"x\r.\r\n"  # a dot after a lone CR does not start a line


def test_header_end_and_body_start() -> None:
    for data, end, start in ((b"A: 1\nB: 2\n\nbody\n", 10, 11), (b"A: 1\r\n\r\nbody", 6, 8),
                             (b"\nbody", 0, 1), (b"\r\nbody", 0, 2), (b"A: 1\nB: 2\n", -1, -1),
                             (b"A: 1\r\nB: 2\n\r\nx", 11, 13)):
        assert header_end(data) == end and body_start(data) == start, data


def test_printable_replaces_every_control() -> None:
    assert printable("mail.example.com") == "mail.example.com"
    assert printable('h\rFrom: "CEO" <ceo@example.com>\r\n\x00\x7f\x85\tx') == 'h?From: "CEO" <ceo@example.com>??????x'
    assert printable("bad\udcff utf-8 ünïcode") == "bad? utf-8 ünïcode"
