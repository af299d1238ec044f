"""The ManageSieve request parser (RFC 5804 §4): pure and incremental, no I/O (STYLE.md rule 1).

``Parser.feed(bytes)`` returns the requests completed by those bytes: a ``Request`` (an atom
followed by strings and numbers), or a ``BadRequest`` whose input up to the end of its line (and
the literals it announced) has been consumed, so the next request starts clean.

* Strings are quoted (``"..."`` with ``\\"`` and ``\\\\``; no CR, LF or NUL) or literals
  ``{n+}`` CRLF n octets (RFC 5804 §4 literal-c2s). A synchronizing ``{n}`` is accepted the
  same way, without a continuation (ManageSieve has none; Dovecot accepts it so too).
* Limits: a line (without its literals) longer than ``max_line`` and a literal longer than
  ``max_literal`` make a BadRequest; the announced literal octets are skipped, not buffered.
* A SASL response line (a lone string) is a Request with the name "" (``Parser`` does not know
  the session is in AUTHENTICATE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Arg = bytes | int  # a string (quoted or literal) or a number

_ATOM = re.compile(rb"[A-Za-z][A-Za-z0-9_-]*")
_NUMBER = re.compile(rb"[0-9]{1,10}")
_LITERAL = re.compile(rb"\{([0-9]{1,10})(\+?)\}$")
_XCLIENT_FIELD = re.compile(rb"[A-Za-z]+=[\x21-\x7e]*")  # Dovecot's XCLIENT ADDR=... PORT=...: atoms


@dataclass(slots=True)
class Request:
    name: str  # upper case; "" for a line that starts with a string (a SASL response)
    args: list[Arg] = field(default_factory=list)


@dataclass(slots=True)
class BadRequest:
    reason: str
    name: str = ""  # the command, when it was recognised


class Parser:
    def __init__(self, max_line: int = 65536, max_literal: int = 1 << 20) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self._buf = bytearray()
        self._request: Request | None = None  # a request whose literal is being read
        self._literal = 0  # octets of that literal still to come
        self._skip = 0  # octets of a refused literal still to discard
        self._line_used = 0  # line octets of the current request (without literals)
        self._bad: BadRequest | None = None  # a refused request: discard through its end

    def pending(self) -> int:
        """Bytes received and not yet part of a completed request (STARTTLS must find none)."""
        return len(self._buf) + (1 if self._request is not None or self._bad is not None else 0)

    def take_buffered(self) -> bytes:
        """What was received and not yet returned as a request, as bytes again, and the parser
        reset: a proxy front node passes it on to the backend after the login. A request being
        refused (too long, malformed) is dropped."""
        if self._bad is not None or self._skip:
            rest = b""
        elif self._request is not None:  # inside a request: its part so far, then the raw rest
            head = unparse(self._request)
            if self._literal:
                head += (b" " if head else b"") + b"{%d+}\r\n" % self._literal
            rest = head + bytes(self._buf)
        else:
            rest = bytes(self._buf)
        self._buf.clear()
        self._request, self._literal, self._skip, self._line_used, self._bad = None, 0, 0, 0, None
        return rest

    def feed(self, data: bytes) -> list[Request | BadRequest]:
        self._buf += data
        out: list[Request | BadRequest] = []
        while True:
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
                if self._skip:
                    return out
            if self._request is not None and self._literal:
                if len(self._buf) < self._literal:
                    return out
                self._request.args.append(bytes(self._buf[: self._literal]))
                del self._buf[: self._literal]
                self._literal = 0
            end = self._buf.find(b"\r\n")
            if end < 0:
                if len(self._buf) + self._line_used > self.max_line and self._bad is None:
                    self._bad = BadRequest("Line too long.", self._request.name if self._request else "")
                    self._request = None
                if self._bad is not None:  # keep only what may be the start of the CRLF
                    del self._buf[: max(0, len(self._buf) - 1)]
                return out
            line = bytes(self._buf[:end])
            del self._buf[: end + 2]
            done = self._line(line)
            if done is not None:
                out.append(done)

    def _line(self, line: bytes) -> Request | BadRequest | None:
        """One CRLF-terminated piece; the request it completes, if any."""
        if self._bad is not None:
            announced = _LITERAL.search(line)
            if announced is not None:  # the refused request goes on after a literal: skip it too
                self._skip = int(announced.group(1))
                return None
            bad, self._bad = self._bad, None
            self._line_used = 0
            return bad
        self._line_used += len(line) + 2
        if self._line_used > self.max_line:
            self._bad = BadRequest("Line too long.", self._request.name if self._request else "")
            self._request = None
            return self._line(line)
        request = self._request or Request("")
        first = self._request is None
        self._request = None
        try:
            literal = self._tokens(line, request, first)
        except ValueError as exc:
            self._bad = BadRequest(str(exc), request.name)
            return self._line(line)
        if literal is not None:
            if literal > self.max_literal:
                self._bad = BadRequest("Literal too big.", request.name)
                self._skip = literal
                return None
            self._request, self._literal = request, literal
            return None
        self._line_used = 0
        if first and not request.name and not request.args:
            return BadRequest("Empty command.")
        return request

    @staticmethod
    def _tokens(line: bytes, request: Request, first: bool) -> int | None:
        """Adds the line's arguments to ``request``; the size of a literal that ends it, if any."""
        i, n = 0, len(line)
        if first:
            m = _ATOM.match(line)
            if m is not None:
                request.name = m.group().decode("ascii").upper()
                i = m.end()
        elif line and not line.startswith(b" "):
            raise ValueError("Missing space after a literal.")
        while i < n:
            if request.name or request.args or i > 0:
                if line[i:i + 1] != b" ":
                    raise ValueError("Expected a space between arguments.")
                i += 1
            if line[i:i + 1] == b'"':
                value, i = _quoted(line, i + 1)
                request.args.append(value)
            elif line[i:i + 1] == b"{":
                m = _LITERAL.match(line, i)
                if m is None:
                    raise ValueError("Bad literal.")
                return int(m.group(1))
            elif request.name == "XCLIENT" and (m := _XCLIENT_FIELD.match(line, i)) is not None:
                request.args.append(m.group())
                i = m.end()
            else:
                m = _NUMBER.match(line, i)
                if m is None or (m.end() < n and line[m.end():m.end() + 1] != b" "):
                    raise ValueError("Bad argument.")
                request.args.append(int(m.group()))
                i = m.end()
        return None


def _quoted(line: bytes, i: int) -> tuple[bytes, int]:
    """A quoted string starting after its opening quote: (value, index after the closing quote)."""
    out = bytearray()
    n = len(line)
    while i < n:
        c = line[i]
        if c == 0x22:  # "
            return bytes(out), i + 1
        if c == 0x5C:  # backslash: only \" and \\ (RFC 5804 §4 QUOTED-SPECIALS)
            if i + 1 >= n or line[i + 1] not in b'"\\':
                raise ValueError("Bad escape in a quoted string.")
            out.append(line[i + 1])
            i += 2
            continue
        if c in (0, 0x0A, 0x0D):  # RFC 5804 §4 QUOTED-CHAR: no NUL, CR or LF
            raise ValueError("Bad character in a quoted string.")
        out.append(c)
        i += 1
    raise ValueError("Unterminated quoted string.")


def unparse(request: Request) -> bytes:
    """A parsed request as the client could have sent it (strings as non-synchronizing
    literals), without the final CRLF: what a proxy passes on of requests read past the login."""
    tokens = [request.name.encode("ascii")] if request.name else []
    for arg in request.args:
        tokens.append(str(arg).encode("ascii") if isinstance(arg, int) else b"{%d+}\r\n" % len(arg) + arg)
    return b" ".join(tokens)
