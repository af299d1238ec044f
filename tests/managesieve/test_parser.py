"""The ManageSieve request parser: every form, malformed input, any split of a transcript."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pymailsrv.managesieve.parser import BadRequest, Parser, Request

TRANSCRIPT = (b'CAPABILITY\r\nAUTHENTICATE "PLAIN" "AGFsaWNlAHB3"\r\n'
              b'PUTSCRIPT "my \\"filter\\"" {28+}\r\nrequire "fileinto";\r\nkeep;\r\n\r\n'
              b'HAVESPACE "x" 1000\r\nputscript "b" {3}\r\nabc\r\nNOOP "tag"\r\n"c2Vj"\r\nLOGOUT\r\n')
EXPECTED = [Request("CAPABILITY"), Request("AUTHENTICATE", [b"PLAIN", b"AGFsaWNlAHB3"]),
            Request("PUTSCRIPT", [b'my "filter"', b'require "fileinto";\r\nkeep;\r\n']),
            Request("HAVESPACE", [b"x", 1000]), Request("PUTSCRIPT", [b"b", b"abc"]),
            Request("NOOP", [b"tag"]), Request("", [b"c2Vj"]), Request("LOGOUT")]


def test_whole_transcript() -> None:
    assert Parser().feed(TRANSCRIPT) == EXPECTED


def test_transcript_in_chunks() -> None:
    for size in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512):
        p = Parser()
        got = []
        for i in range(0, len(TRANSCRIPT), size):
            got += p.feed(TRANSCRIPT[i:i + size])
        assert got == EXPECTED, size
        assert p.pending() == 0


@given(st.lists(st.integers(min_value=0, max_value=len(TRANSCRIPT)), max_size=20))
def test_any_split_gives_the_same_requests(cuts: list[int]) -> None:
    p = Parser()
    got = []
    points = sorted(set(cuts))
    for a, b in zip([0, *points], [*points, len(TRANSCRIPT)], strict=True):
        got += p.feed(TRANSCRIPT[a:b])
    assert got == EXPECTED


def test_malformed_requests_are_refused_and_the_next_one_is_read() -> None:
    p = Parser(max_line=64, max_literal=10)
    bad = [b'NOOP "unterminated\r\n', b'NOOP "bare\rcr"\r\n', b'NOOP "nul\0"\r\n',
           b'NOOP "bad \\escape"\r\n', b"NOOP abc\r\n", b"\r\n",
           b'NOOP"x"\r\n', b"PUTSCRIPT \"a\" {x}\r\n", b"X" * 100 + b"\r\n",
           b'PUTSCRIPT "a" {20+}\r\n' + b"y" * 20 + b"\r\n"]
    for item in bad:
        got = p.feed(item + b"NOOP\r\n")
        assert len(got) == 2 and isinstance(got[0], BadRequest), (item, got)
        assert got[1] == Request("NOOP"), item


def test_a_huge_literal_is_skipped_not_buffered() -> None:
    p = Parser(max_literal=10)
    assert p.feed(b'PUTSCRIPT "a" {1000000+}\r\n') == []
    for _ in range(100):
        assert p.feed(b"z" * 10000) == []
    # refused once the whole request is in (the client sends a {n+} literal whatever we say)
    assert p.feed(b"\r\nNOOP\r\n") == [BadRequest("Literal too big.", "PUTSCRIPT"), Request("NOOP")]
    assert p.pending() == 0


@given(st.lists(st.binary(max_size=64) | st.sampled_from([b"\r\n", b"{3+}\r\n", b'"', b"\\", b" ", b"NOOP"]),
                max_size=30))
def test_any_input_parses_without_raising(chunks: list[bytes]) -> None:
    p = Parser(max_line=128, max_literal=16)
    for chunk in chunks:
        for item in p.feed(chunk):
            assert isinstance(item, Request | BadRequest)


def test_what_a_proxy_passes_on_parses_to_the_same_requests() -> None:
    """unparse + take_buffered: requests read past the login, and the part of one still coming."""
    from pymailsrv.managesieve.parser import unparse

    p = Parser()
    got = p.feed(b'PUTSCRIPT "a" {5+}\r\nhello\r\nNOOP "x"\r\nHAVESPACE "b" 42\r\nGETSCRIPT {3+}\r\nab')
    raw = b"".join(unparse(r) + b"\r\n" for r in got if isinstance(r, Request)) + p.take_buffered()
    assert p.take_buffered() == b""
    again = Parser().feed(raw + b"c\r\n")
    assert again == [*got, Request("GETSCRIPT", [b"abc"])]


def test_xclient_takes_dovecots_unquoted_fields() -> None:
    assert Parser().feed(b"XCLIENT ADDR=192.0.2.7 PORT=4711 SESSION=abc\r\n") == [
        Request("XCLIENT", [b"ADDR=192.0.2.7", b"PORT=4711", b"SESSION=abc"])]
    assert isinstance(Parser().feed(b"NOOP ADDR=192.0.2.7\r\n")[0], BadRequest)
