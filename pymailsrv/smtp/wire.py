"""Pure, incremental SMTP wire parsing: command lines, DATA content, MAIL/RCPT arguments.

Implementation notes
- Nothing here touches a socket (STYLE.md rule 1): the session feeds the bytes it read and asks for
  complete lines or for the end of DATA; what is left over after the final dot goes back to the
  command buffer, so pipelined commands after DATA are not lost.
- DATA is scanned in large chunks, not line by line: the end is found with one ``find`` per chunk,
  dot-unstuffing (RFC 5321 §4.5.2) is one ``replace`` for CRLF-clean mail. Content beyond the size
  limit is counted and dropped, never buffered (RFC 5321 §4.5.3.1.7 lets the server answer at the end).
- Bare LF (SMTP smuggling, Postfix 3.9 smtpd_forbid_bare_newline): in ``normalize`` and ``yes``
  modes only ``<CR><LF>.<CR><LF>`` ends DATA; a dot line after a bare LF is content. ``normalize``
  turns every line ending into CRLF; ``yes`` flags the message so the session refuses it; ``no``
  ends DATA on a lone dot whatever the line endings (the pre-3.9 behaviour).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

CRLF = b"\r\n"


class OverlongLine(Enum):
    """Returned by LineBuffer.next_line when a line exceeded the limit (it has been skipped)."""

    TOKEN = 0


LINE_TOO_LONG = OverlongLine.TOKEN


@dataclass(frozen=True, slots=True)
class Line:
    text: bytes  # without the line ending
    bare_lf: bool  # ended in LF without CR


class LineBuffer:
    """Bytes from the socket in, complete command lines out (RFC 5321 §2.3.8: CRLF; a bare LF is
    accepted and flagged). Lines longer than ``max_line`` are skipped up to their end and reported
    once as LINE_TOO_LONG, so a 10,000-byte line costs no more than ``max_line`` bytes of memory."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._skipping = False
        self._too_long = False  # a skipped line ended: report it before the next line

    def feed(self, data: bytes) -> None:
        if not self._skipping:
            self._buf += data
            return
        lf = data.find(b"\n")
        if lf < 0:
            return
        self._skipping = False
        self._too_long = True
        self._buf += data[lf + 1:]

    def next_line(self) -> Line | OverlongLine | None:
        """A complete line, LINE_TOO_LONG, or None when more input is needed."""
        if self._too_long:
            self._too_long = False
            return LINE_TOO_LONG
        buf = self._buf
        lf = buf.find(b"\n", 0, self.max_line + 2)
        if lf < 0:
            if len(buf) > self.max_line + 1:
                lf = buf.find(b"\n")
                if lf >= 0:
                    del buf[:lf + 1]
                    return LINE_TOO_LONG
                self._buf = bytearray()
                self._skipping = True
            return None
        raw = bytes(buf[:lf])
        del buf[:lf + 1]
        if raw.endswith(b"\r"):
            return Line(raw[:-1], False)
        return Line(raw, True)

    @property
    def pending(self) -> bool:
        """Input is waiting beyond the line just returned (the client pipelined)."""
        return bool(self._buf) or self._skipping or self._too_long

    def take(self) -> bytes:
        """Everything buffered (the start of DATA content); the buffer is emptied."""
        data = bytes(self._buf)
        self._buf = bytearray()
        return data

    def clear(self) -> None:
        """Drop buffered plaintext (RFC 3207 §4.2: after STARTTLS, nothing sent before counts)."""
        self._buf = bytearray()
        self._skipping = False
        self._too_long = False


_END_ANY = re.compile(rb"\n\.\r?\n")
MAX_DOT_PROBES = 64  # dots examined one by one per chunk before falling back to a plain search


class DataReader:
    """Accumulates DATA content until the end marker. ``feed`` returns None while more is needed,
    else the bytes of the chunk that came after the marker (possibly b""). Then ``content()``
    gives the unstuffed message with CRLF line endings and sets ``bare_lf``; ``too_big`` means
    the content was dropped. ``size`` counts every byte received."""

    def __init__(self, limit: int, bare_newline: str = "normalize") -> None:
        self.limit = limit
        self.mode = bare_newline
        self.size = 0
        self.too_big = False
        self.bare_lf = False
        self.done = False
        # A virtual CRLF before the first byte: the DATA command's line ending, so a message that
        # starts with ".\r\n" is empty and a first line starting with "." is unstuffed.
        self._buf = bytearray(CRLF)
        self._scan = 0
        self._stuffed = False  # a line starting with "." was seen (or could not be ruled out)
        self._dropped = 0  # bytes dropped from the front of _buf (too_big mode)

    def feed(self, chunk: bytes) -> bytes | None:
        assert not self.done
        start = len(self._buf)
        self._buf += chunk
        end = self._find_end(max(0, self._scan - 4))
        if end is None:
            self._scan = len(self._buf)
            self.size += len(chunk)
            if self.size > self.limit:
                self._overflow()
            return None
        content_end, marker_end = end
        used = marker_end - start
        self.size += used
        self._message_end = content_end
        self.done = True
        if self.size - 3 > self.limit:  # the marker's ".\r\n" is not content
            self.too_big = True
        return bytes(chunk[used:]) if used < len(chunk) else b""

    def _find_end(self, pos: int) -> tuple[int, int] | None:
        if self.mode == "no":
            self._stuffed = True  # not tracked on this path
            m = _END_ANY.search(self._buf, pos)
            if m is None:
                return None
            return m.start() + 1, m.end()  # content keeps the LF that ended its last line
        # Every end marker and every dot-stuffed line has a "." at a line start: jump from dot to
        # dot with memchr (bytes.find of one byte) instead of a multi-byte search, and note whether
        # any line was stuffed, so content() can skip unstuffing.
        buf = self._buf
        find = buf.find
        size = len(buf)
        for _ in range(MAX_DOT_PROBES):
            i = find(b".", pos)
            if i < 0:
                return None
            if i >= 2 and buf[i - 2] == 13 and buf[i - 1] == 10:  # "." at a line start
                if i + 3 > size:
                    return None  # undecided until more arrives; the next scan starts before it
                if buf[i + 1] == 13 and buf[i + 2] == 10:
                    return i, i + 3
                self._stuffed = True
            pos = i + 1
        self._stuffed = True  # dot-heavy text: a plain search, unstuffing not ruled out
        j = find(b"\r\n.\r\n", max(2, pos - 2) - 2)
        return None if j < 0 else (j + 2, j + 5)

    def _overflow(self) -> None:
        """Past the limit: keep only the tail the end-marker search still needs."""
        self.too_big = True
        keep = 4
        if len(self._buf) > keep:
            self._dropped += len(self._buf) - keep
            del self._buf[:-keep]
            self._scan = len(self._buf)

    def content(self) -> bytes:
        """The message as received, unstuffed, every line ending CRLF (call once, after done)."""
        assert self.done and not self.too_big
        with memoryview(self._buf) as view:
            raw = bytes(view[2:self._message_end])  # one copy, without the virtual CRLF
        self._buf = bytearray()
        if raw.count(b"\n") == raw.count(CRLF):
            if not self._stuffed:
                return raw
            if raw.startswith(b"."):
                raw = raw[1:]
            return raw.replace(b"\r\n.", CRLF)
        self.bare_lf = True
        out = []
        for line in raw.split(b"\n")[:-1]:  # the content ends with a line ending
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.startswith(b"."):
                line = line[1:]
            out.append(line)
        out.append(b"")
        return CRLF.join(out)


# --- MAIL FROM / RCPT TO arguments (RFC 5321 §4.1.1.2-3, RFC 1869 parameters) -----------------


class ArgumentError(ValueError):
    """The argument of MAIL or RCPT does not parse; ``reply`` names the constant to send."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(slots=True)
class PathArgument:
    address: str  # without angle brackets and source route; "" = null path <>
    params: dict[str, str] = field(default_factory=dict)  # upper-cased keys; flag params map to ""
    raw: str = ""  # as written, source route included (what the restrictions see, as in Postfix)


_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")


def parse_path_argument(arg: str, keyword: str, syntax_reply: str, bad_reply: str) -> PathArgument:
    """Parse ``FROM:<addr> PARAM=V ...`` (``keyword`` = "FROM" or "TO"). Lenient like Postfix
    (strict_rfc821_envelopes = no): spaces after the colon, a missing pair of angle brackets."""
    head, colon, rest = arg.partition(":")
    if not colon or head.strip().upper() != keyword:
        raise ArgumentError(syntax_reply)
    rest = rest.strip()
    if not rest:
        raise ArgumentError(syntax_reply)
    if rest.startswith("<"):
        end = _closing_bracket(rest)
        if end < 0:
            raise ArgumentError(bad_reply)
        path, tail = rest[1:end], rest[end + 1:]
        if tail and not tail.startswith(" "):
            raise ArgumentError(bad_reply)
    else:
        path, _, tail = rest.partition(" ")
    raw = path.strip()
    address = _strip_source_route(raw)
    if not _valid_address(address) or not _valid_address(raw.lstrip("@")):
        raise ArgumentError(bad_reply)
    params: dict[str, str] = {}
    for item in tail.split():
        key, eq, value = item.partition("=")
        if not _KEYWORD.match(key) or (eq and not value):
            raise ArgumentError(syntax_reply)
        params[key.upper()] = value
    return PathArgument(address, params, raw)


def _closing_bracket(text: str) -> int:
    quoted = False
    i = 1
    while i < len(text):
        c = text[i]
        if c == "\\" and quoted:
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            return i
        i += 1
    return -1


def _strip_source_route(path: str) -> str:
    """RFC 5321 §4.1.1.3: ``@a,@b:user@c`` → ``user@c`` (source routes are obsolete, ignored)."""
    if path.startswith("@") and ":" in path:
        return path.partition(":")[2]
    return path


def _valid_address(address: str) -> bool:
    """No controls, no surrogates (invalid UTF-8), no space or angle bracket outside quotes."""
    if len(address) > 512 or address.startswith("@"):
        return False
    quoted = escaped = False
    for c in address:
        o = ord(c)
        if o < 32 or o == 127 or 0xD800 <= o <= 0xDFFF:
            return False
        if escaped:
            escaped = False
        elif c == "\\" and quoted:
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif not quoted and c in " <>":
            return False
    return not quoted


# --- RFC 3461 (DSN) parameter values ----------------------------------------------------------


def decode_xtext(value: str) -> str:
    """RFC 3461 §4: ``+HH`` escapes; raises ValueError on a malformed escape or character, or
    on an escape that decodes to anything but printable US-ASCII: ENVID (§4.4) and ORCPT (§4.2)
    values are printable US-ASCII, and they are written into DSN reports, where a CR LF would
    start a field of the client's choosing. Postfix checks the same (allprint) and answers 501."""
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "+":
            hexpart = value[i + 1:i + 3]
            if len(hexpart) != 2 or not all(h in "0123456789ABCDEFabcdef" for h in hexpart):
                raise ValueError("bad xtext")
            code = int(hexpart, 16)
            if not 32 <= code <= 126:
                raise ValueError("bad xtext")
            out.append(chr(code))
            i += 3
            continue
        if not (33 <= ord(c) <= 126) or c == "=":
            raise ValueError("bad xtext")
        out.append(c)
        i += 1
    return "".join(out)


NOTIFY_VALUES = frozenset({"NEVER", "SUCCESS", "FAILURE", "DELAY"})


def parse_notify(value: str) -> tuple[str, ...]:
    """RFC 3461 §4.1: NEVER alone, or a list of SUCCESS, FAILURE, DELAY."""
    items = tuple(v.upper() for v in value.split(","))
    if not items or any(v not in NOTIFY_VALUES for v in items):
        raise ValueError("bad NOTIFY")
    if "NEVER" in items and len(items) > 1:
        raise ValueError("bad NOTIFY")
    return items


def parse_orcpt(value: str) -> str:
    """RFC 3461 §4.2: ``addr-type;xtext`` → ``type;decoded``."""
    kind, semi, addr = value.partition(";")
    if not semi or not kind or not addr or not _KEYWORD.match(kind):
        raise ValueError("bad ORCPT")
    return f"{kind.lower()};{decode_xtext(addr)}"
