"""Encoding values for IMAP responses (RFC 3501 §4, §9) and the fixed response texts. Pure."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

# Fixed texts (Dovecot's wording where clients or admins know it).
GREETING = "Dovecot-compatible pymailsrv ready."
LOGIN_OK = "Logged in"
AUTH_FAILED = "[AUTHENTICATIONFAILED] Authentication failed."
AUTH_UNAVAILABLE = "[UNAVAILABLE] Temporary authentication failure."
PRIVACY_REQUIRED = "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
SERVERBUG = "[SERVERBUG] Internal error occurred. Refer to server log for more information."
TOO_MANY_ERRORS = "Too many invalid IMAP commands."
BYE_LOGOUT = "Logging out"
BYE_TIMEOUT = "Disconnected for inactivity."
BYE_SHUTDOWN = "Server shutting down."
BACKEND_GONE = "[UNAVAILABLE] Backend server disconnected."
BACKEND_UNAVAILABLE = "Account is temporarily unavailable."  # Dovecot's proxy text
# as Dovecot words mail_max_userip_connections; said in a BYE, as its login processes refuse
IP_LIMIT = "Maximum number of connections from IP exceeded (login_max_ip_connections={limit})"
MAILBOX_GONE = "Selected mailbox was deleted, have to disconnect."
NO_SUCH_MAILBOX = "[NONEXISTENT] Mailbox doesn't exist"
UNKNOWN_COMMAND = "Unknown command."
WRONG_STATE = "Command not allowed in this state."
BAD_SEQSET = "Error in IMAP command: Invalid messageset"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_QUOTABLE = re.compile(rb"[\x20-\x7e]*")  # 7-bit text without CR/LF (quote and backslash escaped)


def string(value: bytes | str) -> bytes:
    """A quoted string when it is short 7-bit text, else a literal."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    if len(value) < 1024 and _QUOTABLE.fullmatch(value):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(value)


def nstring(value: bytes | str | None) -> bytes:
    return b"NIL" if value is None else string(value)


def literal(value: bytes) -> bytes:
    return b"{%d}\r\n" % len(value) + value


def astring(value: str) -> bytes:
    """An atom when possible (mailbox names in LIST/STATUS), else a quoted string/literal."""
    raw = value.encode("utf-8")
    if raw and _ATOM.fullmatch(raw):
        return raw
    return string(raw)


_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){ %*"\\\]]+')


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(flags).encode("utf-8", "replace") + b")"


def internal_date(t: float) -> bytes:
    """RFC 3501 date-time: "17-Jul-1996 02:44:25 -0700" (we answer in UTC: +0000)."""
    g = time.gmtime(t)
    return b'"%2d-%s-%04d %02d:%02d:%02d +0000"' % (g.tm_mday, _MONTHS[g.tm_mon - 1].encode(), g.tm_year,
                                                   g.tm_hour, g.tm_min, g.tm_sec)


def seq_set(nums: Iterable[int]) -> str:
    """Compact ascending numbers into "1:3,7,9:10" (UIDPLUS, ESEARCH)."""
    out: list[str] = []
    start = prev = -2
    for n in sorted(nums):
        if n == prev + 1:
            prev = n
            continue
        if start >= 0:
            out.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    if start >= 0:
        out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)
