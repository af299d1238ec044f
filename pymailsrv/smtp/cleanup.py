"""What Postfix's cleanup does to a message before it is queued: the ``Received:`` trace header,
``Message-ID:`` and ``Date:`` when missing (submission), and header_checks.

Implementation notes
- Pure functions over bytes, except ``header_checks`` which awaits the lookup tables.
- The message body is never copied line by line: only the header block is split; the body is
  passed through as one slice.
- ``Return-Path:`` is not added here (final delivery adds it, RFC 5321 §4.4).
"""

from __future__ import annotations

import email.utils
import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from pymailsrv.message.headers import printable
from pymailsrv.pipeline.message import field_name, has_field, header_block
from pymailsrv.policy.base import LookupTable

CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """What the Received header says about the client and the session."""

    helo: str
    client_name: str
    client_address: str
    myhostname: str
    mail_name: str
    protocol: str  # SMTP, ESMTP, ESMTPS, ESMTPSA, UTF8SMTPS … (RFC 3848, RFC 6531)
    tls_version: str = ""
    tls_cipher: str = ""
    tls_bits: int = 0
    sasl_username: str = ""  # shown only when smtpd_sasl_authenticated_header = yes
    recipient: str = ""  # "for <…>" when the message has exactly one recipient
    timestamp: float = 0.0
    queue_id: str = ""


def with_protocol(extended: bool, tls: bool, authenticated: bool, smtputf8: bool) -> str:
    """RFC 3848 / RFC 6531 ``with`` keyword."""
    base = "UTF8SMTP" if smtputf8 else "ESMTP" if extended else "SMTP"
    suffix = ("S" if tls else "") + ("A" if authenticated else "")
    if not extended and not smtputf8:
        return base + ("S" if tls else "")  # RFC 3848 defines no SMTPA
    return base + suffix


def received_header(info: TraceInfo) -> bytes:
    """``Received:`` as Postfix writes it (RFC 5321 §4.4), folded with tabs. What the client
    chose (HELO name, PTR name, login, recipient) goes through ``printable``: no control
    character, so no line break, gets into the header."""
    client_name = printable(info.client_name)
    lines = [f"Received: from {printable(info.helo) or client_name} ({client_name} [{info.client_address}])"]
    if info.tls_version:
        bits = f" ({info.tls_bits}/{info.tls_bits} bits)" if info.tls_bits else ""
        lines.append(f"\t(using {info.tls_version} with cipher {info.tls_cipher}{bits})")
    if info.sasl_username:
        lines.append(f"\t(Authenticated sender: {printable(info.sasl_username)})")
    by = f"\tby {info.myhostname} ({info.mail_name}) with {info.protocol}"
    if info.queue_id:
        by += f" id {info.queue_id}"
    lines.append(by)
    date = _date(int(info.timestamp))
    if info.recipient:
        lines.append(f"\tfor <{printable(info.recipient)}>; {date}")
    else:
        lines[-1] += f"; {date}"
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=4)  # a busy second formats its date once (formatdate costs ≈ 10 µs)
def _date(second: int) -> str:
    return email.utils.formatdate(second, localtime=True)


def split_headers(content: bytes) -> tuple[list[bytes], bytes]:
    """The logical header fields (each with its folded lines and final CRLF) and the rest (the
    empty separator line and the body). A line that is not a header field ends the header block
    (RFC 5322 §2.1; lenient like Postfix)."""
    headers, offset = header_block(content)
    return headers, content[offset:]


def message_id(myhostname: str, timestamp: float, queue_id: str = "") -> str:
    import time

    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(timestamp))
    unique = queue_id or secrets.token_hex(6).upper()
    return f"<{stamp}.{unique}@{myhostname}>"


def missing_headers(headers: Sequence[bytes], myhostname: str, timestamp: float) -> list[bytes]:
    """``Message-ID:`` and ``Date:`` for a submitted message that lacks them (RFC 5322 §3.6)."""
    added = []
    if not has_field(headers, "message-id"):
        added.append(f"Message-ID: {message_id(myhostname, timestamp)}\r\n".encode())
    if not has_field(headers, "date"):
        added.append(f"Date: {email.utils.formatdate(timestamp, localtime=True)}\r\n".encode())
    return added


def find_message_id(headers: Sequence[bytes]) -> str:
    for h in headers:
        if field_name(h) == "message-id":
            return h.partition(b":")[2].strip().decode("utf-8", "replace")
    return ""


# --- header_checks --------------------------------------------------------------------------


@dataclass(slots=True)
class CheckResult:
    headers: list[bytes]
    reject: str = ""  # reply text for REJECT (the session answers 550 5.7.1 <text>)
    hold: bool = False
    discard: bool = False
    filter: str = ""
    redirect: str = ""
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (action, header, text) to log


def header_text(header: bytes) -> str:
    """The logical header as header_checks patterns see it: folding kept as newlines."""
    return header.rstrip(b"\r\n").replace(CRLF, b"\n").decode("utf-8", "replace")


async def header_checks(headers: list[bytes], tables: Sequence[LookupTable]) -> CheckResult:
    """Apply header_checks (Postfix header_checks(5)) to each logical header, first table match
    wins per header. Actions: IGNORE, REJECT, WARN, HOLD, DISCARD, PREPEND, REPLACE, FILTER,
    REDIRECT, INFO, DUNNO/OK. A REJECT or DISCARD stops the checks."""
    result = CheckResult(headers=[])
    for header in headers:
        text = header_text(header)
        action = None
        for table in tables:
            action = await table.get(text)
            if action is not None:
                break
        if action is None:
            result.headers.append(header)
            continue
        verb, _, arg = action.strip().partition(" ")
        verb, arg = verb.upper(), arg.strip()
        stop = _apply(verb, arg, header, text, result)
        if stop:
            break
    return result


def _apply(verb: str, arg: str, header: bytes, text: str, result: CheckResult) -> bool:
    keep = True
    if verb == "IGNORE":
        keep = False
    elif verb == "REJECT":
        result.reject = arg
        result.events.append(("reject", text, arg))
        return True
    elif verb == "DISCARD":
        result.discard = True
        result.events.append(("discard", text, arg))
        return True
    elif verb in ("WARN", "INFO", "HOLD", "FILTER", "REDIRECT"):
        result.events.append((verb.lower(), text, arg))
        if verb == "HOLD":
            result.hold = True
        elif verb == "FILTER":
            result.filter = arg
        elif verb == "REDIRECT":
            result.redirect = arg
    elif verb == "PREPEND" and arg:
        result.headers.append(arg.encode("utf-8", "surrogateescape") + CRLF)
    elif verb == "REPLACE" and arg:
        result.headers.append(arg.encode("utf-8", "surrogateescape") + CRLF)
        keep = False
    if keep:
        result.headers.append(header)
    return False
