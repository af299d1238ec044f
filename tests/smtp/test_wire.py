"""The pure wire parsers: command lines, DATA content, MAIL/RCPT arguments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymailsrv.smtp import replies as R
from pymailsrv.smtp.wire import (
    LINE_TOO_LONG,
    ArgumentError,
    DataReader,
    Line,
    LineBuffer,
    decode_xtext,
    parse_notify,
    parse_orcpt,
    parse_path_argument,
)


def lines_of(buf: LineBuffer) -> list[object]:
    out: list[object] = []
    while (item := buf.next_line()) is not None:
        out.append(item)
    return out


def test_line_buffer_crlf_and_bare_lf() -> None:
    b = LineBuffer(100)
    b.feed(b"EHLO a\r\nNOOP\nQU")
    assert lines_of(b) == [Line(b"EHLO a", False), Line(b"NOOP", True)]
    assert b.pending
    b.feed(b"IT\r\n")
    assert lines_of(b) == [Line(b"QUIT", False)]
    assert not b.pending


def test_line_buffer_too_long_is_skipped_in_bounded_memory() -> None:
    b = LineBuffer(64)
    b.feed(b"NOOP\r\n" + b"X" * 5000)
    assert lines_of(b) == [Line(b"NOOP", False)]
    assert len(b._buf) == 0  # nothing of the long line kept
    b.feed(b"Y" * 5000)
    assert lines_of(b) == []
    b.feed(b"ZZ\r\nQUIT\r\n")
    assert lines_of(b) == [LINE_TOO_LONG, Line(b"QUIT", False)]


def test_line_buffer_exact_limit_is_fine() -> None:
    b = LineBuffer(10)
    b.feed(b"A" * 10 + b"\r\n" + b"B" * 11 + b"\r\n")
    assert lines_of(b) == [Line(b"A" * 10, False), LINE_TOO_LONG]


def test_line_buffer_clear_drops_pipelined_plaintext() -> None:
    b = LineBuffer(100)
    b.feed(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
    assert lines_of(b)[0] == Line(b"STARTTLS", False)
    b.clear()
    assert lines_of(b) == [] and not b.pending


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7, 64, 512, 100000])
def test_line_buffer_any_split(chunk: int) -> None:
    data = b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\nDATA\r\n"
    b = LineBuffer(100)
    got: list[object] = []
    for i in range(0, len(data), chunk):
        b.feed(data[i:i + chunk])
        got += lines_of(b)
    assert [g.text for g in got] == [b"EHLO a", b"MAIL FROM:<a@b>", b"RCPT TO:<c@d>", b"DATA"]


# --- DATA --------------------------------------------------------------------------------------
def read_all(data: bytes, chunk: int, limit: int = 10**9,
             mode: str = "normalize") -> tuple[DataReader, bytes]:
    r = DataReader(limit, mode)
    rest = None
    i = 0
    while rest is None:
        assert i < len(data), "ran out of input before the end marker"
        rest = r.feed(data[i:i + chunk])
        i += chunk
    return r, rest + data[i:]


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 8, 512, 65536])
def test_data_unstuffing_and_leftover(chunk: int) -> None:
    data = b".hidden\r\nSubject: x\r\n\r\n..two\r\n.\r\n\r\n..\r\n.\r\nQUIT\r\n"
    r, rest = read_all(data, chunk)
    assert r.content() == b"hidden\r\nSubject: x\r\n\r\n.two\r\n.\r\n\r\n.\r\n"[:0] + \
        b"hidden\r\nSubject: x\r\n\r\n.two\r\n"
    assert rest == b"\r\n..\r\n.\r\nQUIT\r\n"


def test_empty_message() -> None:
    r, rest = read_all(b".\r\nNOOP\r\n", 3)
    assert r.content() == b"" and rest == b"NOOP\r\n"


def test_size_limit_counts_without_buffering() -> None:
    r = DataReader(1000)
    for _ in range(100):
        assert r.feed(b"x" * 998 + b"\r\n") is None
    assert r.too_big and len(r._buf) <= 4 + 1000
    assert r.feed(b".\r\nNOOP\r\n") == b"NOOP\r\n"
    assert r.too_big and r.size >= 100000


def test_smuggling_bare_lf_dot_is_content_in_normalize() -> None:
    # "<LF>.<LF>" and "<LF>.<CR><LF>" must not end DATA (Postfix 3.9, CVE-2023-51764)
    data = (b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<x@y>\r\nbody2\n.\r\nRCPT TO:<z@w>\r\n"
            b"end\r\n.\r\nQUIT\r\n")
    r, rest = read_all(data, 7)
    content = r.content()
    assert rest == b"QUIT\r\n"
    assert r.bare_lf
    assert content == (b"Subject: a\r\n\r\nbody\r\n\r\nMAIL FROM:<x@y>\r\nbody2\r\n\r\nRCPT TO:<z@w>\r\n"
                       b"end\r\n")


def test_bare_lf_mode_no_ends_on_lf_dot() -> None:
    r, rest = read_all(b"a\nb\n.\nQUIT\r\n", 2, mode="no")
    assert r.content() == b"a\r\nb\r\n" and rest == b"QUIT\r\n"


def reference_decode(data: bytes) -> tuple[bytes, bytes]:
    """aiosmtpd 1.4.6's line-by-line algorithm (smtp_DATA), for CRLF input: the pinned behaviour."""
    out = []
    pos = 0
    while True:
        end = data.index(b"\r\n", pos) + 2
        line = data[pos:end]
        pos = end
        if line == b".\r\n":
            return b"".join(out), data[pos:]
        out.append(line[1:] if line.startswith(b".") else line)


line_st = st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(line_st, st.sampled_from([b".", b"..", b".x", b""])), max_size=30),
       st.integers(min_value=1, max_value=64), st.sampled_from(["normalize", "yes", "no"]))
def test_matches_aiosmtpd_line_reader(lines: list[bytes], chunk: int, mode: str) -> None:
    stuffed = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
    data = stuffed + b".\r\nNEXT\r\n"
    expected, expected_rest = reference_decode(data)
    r, rest = read_all(data, chunk, mode=mode)
    assert r.content() == expected == b"".join(ln + b"\r\n" for ln in lines)
    assert rest == expected_rest == b"NEXT\r\n"


# --- MAIL / RCPT arguments -------------------------------------------------------------------
def mail(arg: str):  # type: ignore[no-untyped-def]
    return parse_path_argument(arg, "FROM", R.MAIL_SYNTAX, R.BAD_SENDER)


@pytest.mark.parametrize("arg,address,params", [
    ("FROM:<a@b.c>", "a@b.c", {}),
    ("from: <a@b.c> SIZE=100 BODY=8BITMIME", "a@b.c", {"SIZE": "100", "BODY": "8BITMIME"}),
    ("FROM:<>", "", {}),
    ("FROM:a@b.c", "a@b.c", {}),
    ("FROM:<@relay.x,@r2.y:user@c.d>", "user@c.d", {}),
    ('FROM:<"odd>name"@c.d> SMTPUTF8', '"odd>name"@c.d', {"SMTPUTF8": ""}),
    ("FROM:<ünï@exämple.test>", "ünï@exämple.test", {}),
])
def test_path_argument(arg: str, address: str, params: dict[str, str]) -> None:
    p = mail(arg)
    assert p.address == address and p.params == params


@pytest.mark.parametrize("arg,reply", [
    ("", R.MAIL_SYNTAX), ("TO:<a@b>", R.MAIL_SYNTAX), ("FROM:", R.MAIL_SYNTAX),
    ("FROM:<a@b", R.BAD_SENDER), ("FROM:<a b@c>", R.BAD_SENDER), ("FROM:<a@b>x", R.BAD_SENDER),
    ("FROM:<a@b> SIZE=", R.MAIL_SYNTAX), ("FROM:<a\udcff@b>", R.BAD_SENDER),
    ("FROM:<a\x00@b>", R.BAD_SENDER),
])
def test_path_argument_errors(arg: str, reply: str) -> None:
    with pytest.raises(ArgumentError) as e:
        mail(arg)
    assert e.value.reply == reply


def test_dsn_values() -> None:
    assert decode_xtext("a+2Bb+3D") == "a+b="
    assert decode_xtext("a+20b+7E") == "a b~"
    for bad in ("a+zz", "a+0D+0Ab", "+00", "+7F", "+1F", "caf+C3+A9"):  # printable US-ASCII only
        with pytest.raises(ValueError):
            decode_xtext(bad)
    assert parse_notify("success,failure") == ("SUCCESS", "FAILURE")
    for bad in ("NEVER,SUCCESS", "SOMETIMES", ""):
        with pytest.raises(ValueError):
            parse_notify(bad)
    assert parse_orcpt("rfc822;a+40b@c") == "rfc822;a@b@c"


TRANSCRIPT = (b"EHLO client.test\r\nMAIL FROM:<a@b.test> SIZE=10\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"
              b"Subject: x\r\n\r\n..dot\r\nline\r\n.\r\nRSET\r\nQUIT\r\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(TRANSCRIPT)), max_size=12))
def test_any_split_gives_the_same_dialogue(cuts: list[int]) -> None:
    """STYLE.md rule 1: a valid transcript split anywhere parses to the same commands and content."""
    points = sorted(set(cuts))
    chunks = [TRANSCRIPT[a:b] for a, b in zip([0, *points], [*points, len(TRANSCRIPT)], strict=True)]
    lines = LineBuffer(1000)
    got: list[bytes] = []
    reader: DataReader | None = None
    content = b""
    for chunk in chunks:
        if reader is not None:
            rest = reader.feed(chunk)
            if rest is None:
                continue
            content = reader.content()
            reader = None
            chunk = rest
        lines.feed(chunk)
        while (item := lines.next_line()) is not None:
            assert isinstance(item, Line)
            got.append(item.text)
            if item.text == b"DATA":
                reader = DataReader(10**6)
                rest = reader.feed(lines.take())
                if rest is not None:
                    content = reader.content()
                    reader = None
                    lines.feed(rest)
    assert got == [b"EHLO client.test", b"MAIL FROM:<a@b.test> SIZE=10", b"RCPT TO:<c@d.test>", b"DATA",
                   b"RSET", b"QUIT"]
    assert content == b"Subject: x\r\n\r\n.dot\r\nline\r\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b".", b"..", b".x", b"a.b", b"", b"x", b". ", b"\r", b"q.\r"]), max_size=120),
       st.integers(min_value=1, max_value=40), st.integers(min_value=50, max_value=400))
def test_dot_heavy_content_and_size_limit(lines: list[bytes], chunk: int, limit: int) -> None:
    """Many dots (the plain-search fallback) and the size limit keep the end marker exact."""
    stuffed = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
    data = stuffed + b".\r\nNEXT\r\n"
    r, rest = read_all(data, chunk, limit=limit)
    assert rest == b"NEXT\r\n"
    expected = b"".join(ln + b"\r\n" for ln in lines)
    if len(stuffed) > limit + 3:
        assert r.too_big
    elif not r.too_big:
        assert r.content() == expected


@pytest.mark.parametrize("mode", ["normalize", "yes", "no"])
def test_unstuffing_in_every_mode(mode: str) -> None:
    r, rest = read_all(b"..one\r\ntwo\r\n..\r\n.\r\n", 3, mode=mode)
    assert r.content() == b".one\r\ntwo\r\n.\r\n" and rest == b""
