"""Dovecot's authentication protocol, client side of the auth server ("auth-client", version
1.2), as values: pure parsing and formatting, no I/O (STYLE.md rule 1).

Implementation notes
- Lines are tab-separated fields ended by LF. A value carrying a tab, LF, CR or \\001 is escaped
  with \\001 (Dovecot's ``str_tabescape``: \\001 → \\0011, TAB → \\001t, LF → \\001n, CR → \\001r).
- The server speaks first: VERSION, one MECH per mechanism (with flags such as ``plaintext``),
  SPID, CUID, COOKIE, DONE. The client answers ``VERSION 1 x`` and ``CPID pid``, then sends
  ``AUTH id mech key=value … flag …`` and ``CONT id base64``; the server answers
  ``CONT id base64``, ``OK id user=…`` or ``FAIL id [user=…] [temp] [reason=…]``.
- What Postfix's smtpd sends (xsasl_dovecot_server.c): ``AUTH id mech service=smtp nologin
  lip=… rip=… [secured] [resp=base64]``; ``temp`` in a FAIL becomes its 454 4.7.0, anything else
  its 535 5.7.8.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAJOR_VERSION = 1
MINOR_VERSION = 2
MAX_LINE = 16384  # Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH
MAX_REQUEST_ID = 2**32 - 1

_ESCAPES = {"\x01": "\x011", "\t": "\x01t", "\n": "\x01n", "\r": "\x01r"}
_UNESCAPES = {"1": "\x01", "t": "\t", "n": "\n", "r": "\r"}


class ProtocolError(ValueError):
    """A line the protocol does not allow: the server logs it and disconnects, as Dovecot does."""


def escape(value: str) -> str:
    if not any(c in value for c in _ESCAPES):
        return value
    return "".join(_ESCAPES.get(c, c) for c in value)


def unescape(value: str) -> str:
    if "\x01" not in value:
        return value
    out: list[str] = []
    it = iter(value)
    for c in it:
        if c == "\x01":
            nxt = next(it, "")
            if nxt not in _UNESCAPES:
                raise ProtocolError("bad escape sequence")
            out.append(_UNESCAPES[nxt])
        else:
            out.append(c)
    return "".join(out)


def split_line(line: bytes) -> list[str]:
    """One line (with or without its LF) → its unescaped fields. Raises ProtocolError."""
    text = line.rstrip(b"\n").rstrip(b"\r")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("line is not UTF-8") from None
    if not decoded:
        raise ProtocolError("empty line")
    return [unescape(f) for f in decoded.split("\t")]


def format_line(*fields: str) -> bytes:
    return ("\t".join(escape(f) for f in fields) + "\n").encode("utf-8")


def handshake(mechanisms: list[tuple[str, tuple[str, ...]]], spid: int, cuid: int, cookie: str) -> bytes:
    """What the server sends on connect: VERSION, MECH lines, SPID, CUID, COOKIE, DONE."""
    out = [format_line("VERSION", str(MAJOR_VERSION), str(MINOR_VERSION))]
    out += [format_line("MECH", name, *flags) for name, flags in mechanisms]
    out += [format_line("SPID", str(spid)), format_line("CUID", str(cuid)), format_line("COOKIE", cookie),
            format_line("DONE")]
    return b"".join(out)


def parse_version(fields: list[str]) -> tuple[int, int]:
    if len(fields) < 3 or not fields[1].isdigit() or not fields[2].isdigit():
        raise ProtocolError("bad VERSION line")
    return int(fields[1]), int(fields[2])


def parse_id(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_REQUEST_ID:
        raise ProtocolError("bad request id")
    return int(text)


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """``AUTH id mech params…``: ``params`` maps each ``key=value`` to its value and each flag
    (``secured``, ``nologin``, ``valid-client-cert`` …) to ""."""

    id: int
    mechanism: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def remote_ip(self) -> str:
        return self.params.get("rip", "")

    @property
    def local_ip(self) -> str:
        return self.params.get("lip", "")

    @property
    def secured(self) -> bool:
        return "secured" in self.params

    @property
    def initial_response(self) -> str | None:
        """The ``resp=`` value (base64; "" = an empty initial response), None when absent."""
        return self.params.get("resp")


def parse_auth(fields: list[str]) -> AuthRequest:
    if len(fields) < 3 or not fields[2]:
        raise ProtocolError("bad AUTH line")
    params: dict[str, str] = {}
    for item in fields[3:]:
        key, _, value = item.partition("=")
        params[key] = value
    return AuthRequest(parse_id(fields[1]), fields[2].upper(), params)


def parse_cont(fields: list[str]) -> tuple[int, str]:
    if len(fields) != 3:
        raise ProtocolError("bad CONT line")
    return parse_id(fields[1]), fields[2]


def ok(request_id: int, user: str) -> bytes:
    return format_line("OK", str(request_id), f"user={user}")


def cont(request_id: int, challenge: str) -> bytes:
    return format_line("CONT", str(request_id), challenge)


def fail(request_id: int, *, user: str = "", temp: bool = False, code: str = "", reason: str = "") -> bytes:
    fields = ["FAIL", str(request_id)]
    if user:
        fields.append(f"user={user}")
    if temp:
        fields.append("temp")
    if code:
        fields.append(f"code={code}")
    if reason:
        fields.append(f"reason={reason}")
    return format_line(*fields)
