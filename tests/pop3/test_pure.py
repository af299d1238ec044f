"""Pure parts of the POP3 server: line splitting, command parsing, wire conversion, maildrop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymailsrv.errors import ClientSyntaxError, ConfigError, Refusal
from pymailsrv.message.lines import to_crlf
from pymailsrv.pop3 import replies
from pymailsrv.pop3.content import retr_payload, top_payload
from pymailsrv.pop3.maildrop import Maildrop, compile_uidl_format, format_uidl
from pymailsrv.pop3.parser import TOO_LONG, LineSplitter, parse_command, parse_number
from pymailsrv.store.base import DELETED, SEEN, MessageInfo

TRANSCRIPT = b"USER a@b\r\nPASS secret with spaces\r\nSTAT\r\nLIST 1\nRETR 2\r\nTOP 1 0\r\nQUIT\r\n"


def _split(data: bytes, size: int, limit: int = 100) -> list[object]:
    sp = LineSplitter(limit)
    out: list[object] = []
    for i in range(0, len(data), size):
        out.extend(sp.feed(data[i:i + size]))
    return out


def test_lines_and_bare_lf() -> None:
    assert _split(TRANSCRIPT, len(TRANSCRIPT))[3] == b"LIST 1"


@pytest.mark.parametrize("size", [1, 2, 3, 4, 8, 16, 32, 64, 128, 256, 512])
def test_any_chunking_gives_same_lines(size: int) -> None:
    assert _split(TRANSCRIPT, size) == _split(TRANSCRIPT, len(TRANSCRIPT))


@given(st.lists(st.integers(min_value=1, max_value=len(TRANSCRIPT)), max_size=10))
def test_property_any_split(cuts: list[int]) -> None:
    sp = LineSplitter(100)
    out: list[object] = []
    pos = 0
    for c in [*sorted(set(cuts)), len(TRANSCRIPT)]:
        out.extend(sp.feed(TRANSCRIPT[pos:c]))
        pos = c
    assert out == _split(TRANSCRIPT, len(TRANSCRIPT))


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_long_line_reported_once_then_recovers(size: int) -> None:
    data = b"NOOP\r\n" + b"X" * 5000 + b"\r\nSTAT\r\n"
    assert _split(data, size, limit=64) == [b"NOOP", TOO_LONG, b"STAT"]


def test_line_at_limit_is_accepted() -> None:
    assert _split(b"A" * 64 + b"\r\n", 1, limit=64) == [b"A" * 64]
    assert _split(b"A" * 65 + b"\r\n", 1, limit=64) == [TOO_LONG]


def test_pending_counts_partial_line() -> None:
    sp = LineSplitter(100)
    assert sp.feed(b"STLS\r\nUSER x") == [b"STLS"]
    assert sp.pending() == 6
    sp.reset()
    assert sp.pending() == 0


def test_parse_command() -> None:
    cmd = parse_command(b"pass  secret with spaces")
    assert cmd.name == "PASS" and cmd.rest == " secret with spaces"
    assert parse_command(b"TOP 1 10").args == ("1", "10")
    for bad in (b"", b" STAT", b"\xff\xfe", b"ST\x00AT", b"12", b"TOOLONGCOMMAND"):
        with pytest.raises(ClientSyntaxError):
            parse_command(bad)


@pytest.mark.parametrize("arg", ["-1", "+1", "1.0", "0x10", "99999999999", "", "\u0661"])
def test_parse_number_rejects(arg: str) -> None:
    with pytest.raises(ClientSyntaxError):
        parse_number(arg)


def test_parse_number() -> None:
    assert parse_number("0") == 0 and parse_number("4294967295") == 4294967295


def test_crlf_conversion() -> None:
    assert to_crlf(b"a\nb\n") == b"a\r\nb\r\n"
    assert to_crlf(b"a\r\nb\nc\rd") == b"a\r\nb\r\nc\rd"


def test_dot_stuffing() -> None:
    assert retr_payload(b".start\n..two\nmid.dle\n.\n") == b"..start\r\n...two\r\nmid.dle\r\n..\r\n"
    assert retr_payload(b"no newline at end") == b"no newline at end\r\n"
    assert retr_payload(b"") == b""


@given(st.binary(max_size=300))
def test_payload_unstuffs_to_crlf_message(data: bytes) -> None:
    payload = retr_payload(data)
    lines = payload.split(b"\r\n")
    unstuffed = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    assert not any(line == b"." for line in lines)
    expected = to_crlf(data)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert unstuffed == expected


MSG = b"From: a\nSubject: s\n\nline1\n.line2\nline3\n"


def test_top() -> None:
    assert top_payload(MSG, 0) == b"From: a\r\nSubject: s\r\n\r\n"
    assert top_payload(MSG, 2) == b"From: a\r\nSubject: s\r\n\r\nline1\r\n..line2\r\n"
    assert top_payload(MSG, 99) == retr_payload(MSG)
    assert top_payload(b"From: a\n", 5) == b"From: a\r\n"
    assert top_payload(b"\nbody\n", 0) == b"\r\n"


def test_uidl_format() -> None:
    fmt = compile_uidl_format("%08Xu%08Xv")
    assert format_uidl(fmt, 10, 0x5F00AB) == "0000000a005f00ab"  # Dovecot's hex is lower case
    assert format_uidl(compile_uidl_format("%08UXu"), 10, 1) == "0000000A"
    assert format_uidl(compile_uidl_format("%v.%u"), 3, 17) == "17.3"
    assert format_uidl(compile_uidl_format("u%%%xu{}"), 255, 1) == "u%ff{}"
    for bad in ("%m", "%v only"):
        with pytest.raises(ConfigError):
            compile_uidl_format(bad)


def _info(uid: int, size: int = 10, flags: frozenset[str] = frozenset()) -> MessageInfo:
    return MessageInfo(uid, flags, size, 0.0)


def test_maildrop_numbers_deletes_and_reset() -> None:
    drop = Maildrop([_info(3), _info(5, 20, frozenset({DELETED})), _info(9, 30, frozenset({SEEN}))],
                    7, compile_uidl_format("%08Xu%08Xv"))
    assert len(drop) == 2 and drop.stat() == (2, 40)
    assert drop.uidl(drop.get(2)) == "0000000900000007"
    drop.delete(1)
    assert drop.stat() == (1, 30) and drop.deleted_uids() == [3]
    with pytest.raises(Refusal, match="deleted"):
        drop.get(1)
    with pytest.raises(Refusal):
        drop.delete(1)
    for n in (0, 3, 10**9):
        with pytest.raises(Refusal):
            drop.get(n)
    drop.reset()
    assert drop.stat() == (2, 40) and drop.live()[0][0] == 1
    shown = Maildrop([_info(3), _info(5, flags=frozenset({DELETED}))], 7, "{uid}", hide_deleted=False)
    assert len(shown) == 2


def test_reply_constants() -> None:
    assert replies.err("x", replies.CODE_IN_USE) == b"-ERR [IN-USE] x\r\n"
    assert replies.ok() == b"+OK\r\n"
    assert replies.multiline(replies.ok(), [".a", "b"]) == b"+OK\r\n..a\r\nb\r\n.\r\n"
    assert "\r" not in replies.PLAINTEXT_DISALLOWED


def test_default_options_match_the_default_parameter() -> None:
    from pymailsrv.config.settings import Settings
    from pymailsrv.pop3.options import Pop3Options

    fmt = compile_uidl_format(Settings({}).get_str("pop3_uidl_format"))
    assert fmt == Pop3Options().uidl_format


@given(st.binary(max_size=200))
def test_parse_command_only_raises_syntax_errors(line: bytes) -> None:
    try:
        cmd = parse_command(line)
    except ClientSyntaxError:
        return
    assert cmd.name.isalpha() and cmd.name.isupper()


def _reference_top(data: bytes, lines: int) -> bytes:
    """TOP the slow, obvious way: convert everything, then cut (the previous implementation)."""
    wire = to_crlf(data)
    if wire.startswith(b"\r\n"):
        sep = 0
    else:
        sep = wire.find(b"\r\n\r\n")
        if sep < 0:
            return retr_payload(data)
        sep += 2
    end = sep + 2
    for _ in range(lines):
        nl = wire.find(b"\r\n", end)
        if nl < 0:
            end = len(wire)
            break
        end = nl + 2
    return retr_payload(wire[:end])


@given(st.lists(st.sampled_from([b"a", b".", b"\n", b"\r\n", b"\r", b"H: v", b" "]), max_size=40),
       st.integers(min_value=0, max_value=6))
def test_top_matches_reference(parts: list[bytes], lines: int) -> None:
    data = b"".join(parts)
    assert top_payload(data, lines) == _reference_top(data, lines)


@pytest.mark.parametrize(("data", "expected"), [
    (b"A" * 64 + b"\r\n", [b"A" * 64]), (b"A" * 64 + b"\n", [b"A" * 64]),
    (b"A" * 65 + b"\r\n", [TOO_LONG]), (b"A" * 65 + b"\n", [TOO_LONG]),
    (b"STAT\r\n", [b"STAT"]), (b"STAT\n", [b"STAT"]), (b"\r\n", [b""]), (b"\n", [b""]),
])
def test_single_line_feeds(data: bytes, expected: list[object]) -> None:
    """One read holding one whole line (the fast path) agrees with byte-by-byte feeding."""
    assert LineSplitter(64).feed(data) == expected == _split(data, 1, limit=64)


def test_read_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pymailsrv.pop3.mail_commands import _read_files

    (tmp_path / "a").write_bytes(b"x" * 100_000)
    (tmp_path / "b").write_bytes(b"")
    got = _read_files([(1, str(tmp_path / "a")), (2, str(tmp_path / "b")), (3, str(tmp_path / "gone"))])
    assert got == {1: b"x" * 100_000, 2: b""}
