"""Delivery status notifications: bounces, delay notices, success reports (RFC 3464, RFC 3461).

Pure: ``build_notice`` turns a description of what happened into the bytes of a
``multipart/report; report-type=delivery-status`` message from MAILER-DAEMON, in Postfix's shape.
Every value written into a line of the notice goes through ``printable``, so none can carry a
CR or LF of its own (defence in depth: ENVID and ORCPT are checked where they enter, but the
diagnostic text is a remote server's).
"""

from __future__ import annotations

import email.utils
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pymailsrv.message.headers import printable
from pymailsrv.message.lines import header_end, to_lf

Kind = Literal["failure", "delay", "success"]

SUBJECTS: dict[str, str] = {
    "failure": "Undelivered Mail Returned to Sender",
    "delay": "Delayed Mail (still being retried)",
    "success": "Successful Mail Delivery Report",
}

_INTRO: dict[str, str] = {
    "failure": (
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n\n"
        "For further assistance, please send mail to postmaster.\n\n"
        "If you do so, please include this problem report. You can\n"
        "delete your own text from the attached returned message.\n"
    ),
    "delay": (
        "####################################################################\n"
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
        "####################################################################\n\n"
        "Your message could not be delivered for {hours} hour(s).\n"
        "It will be retried until it is {days} day(s) old.\n\n"
        "For further assistance, please send mail to postmaster.\n\n"
        "If you do so, please include this problem report. You can\n"
        "delete your own text from the attached returned message.\n"
    ),
    "success": (
        "Your message was successfully delivered to the destination(s)\n"
        "listed below. If the message was delivered to mailbox you will\n"
        "receive no further notifications. Otherwise you may still receive\n"
        "notifications of mail delivery errors from other systems.\n"
    ),
}

_ACTION = {"failure": "failed", "delay": "delayed", "success": "delivered"}
_DESCRIPTION = {"failure": "Undelivered Message", "delay": "Delayed Message", "success": "Delivered Message"}

FULL_MESSAGE_LIMIT = 50_000  # Postfix bounce_size_limit: larger originals return headers only


@dataclass(frozen=True, slots=True)
class RecipientReport:
    final: str  # Final-Recipient
    original: str = ""  # Original-Recipient (ORCPT "rfc822;addr", or the address before expansion)
    dsn: str = "5.0.0"
    text: str = ""  # diagnostic text
    relay: str = "none"  # Remote-MTA when remote, "host[ip]:port"


@dataclass(frozen=True, slots=True)
class NoticeInfo:
    kind: Kind
    queue_id: str
    sender: str  # the original envelope sender
    to: str  # who receives the notice
    hostname: str
    arrival: float
    now: float
    envid: str = ""
    ret: str = ""  # "FULL" | "HDRS" | ""
    retry_until: float = 0.0
    postmaster_copy: bool = False  # a notice to postmaster about a bounce of a bounce
    mail_name: str = "pymailsrv"


def _header_fields(content: bytes) -> bytes:
    end = header_end(content)
    return content if end < 0 else content[:end]


_SAID = re.compile(r"^host \S+ said: (\d{3} .*?)(?: \(in reply to .+ command\))?$", re.S)


def diagnostic(text: str) -> str:
    """RFC 3464 §2.3.6: ``smtp; <the remote reply>`` when a server said it, else ``X-Postfix; text``."""
    m = _SAID.match(text)
    if m:
        return f"smtp; {m.group(1)}"
    if text[:3].isdigit():
        return f"smtp; {text}"
    return f"X-Postfix; {text}"


def _human(info: NoticeInfo, reports: Sequence[RecipientReport]) -> str:
    intro = _INTRO[info.kind].format(
        hours=max(1, int((info.now - info.arrival) // 3600)),
        days=max(1, round((info.retry_until - info.arrival) / 86400)),
    )
    lines = [f"This is the mail system at host {info.hostname}.", "", intro, "                   The mail system", ""]
    for r in reports:
        tail = f": {r.text}" if r.text else ""
        line = printable(f"<{r.final}>{' (expanded from <' + _addr(r.original) + '>)' if _show_orig(r) else ''}{tail}")
        # Postfix wraps each recipient's line, continuation lines indented by four spaces
        lines.extend(textwrap.wrap(line, 76, subsequent_indent="    ", break_long_words=False,
                                   break_on_hyphens=False) or [line])
        lines.append("")
    return "\n".join(lines)


def _addr(original: str) -> str:
    return original.partition(";")[2] if ";" in original else original


def _show_orig(r: RecipientReport) -> bool:
    return bool(r.original) and _addr(r.original).lower() != r.final.lower()


def _status_part(info: NoticeInfo, reports: Sequence[RecipientReport]) -> str:
    # RFC 3464 §2.2: per-message fields, a blank line, then one block per recipient.
    out = [f"Reporting-MTA: dns; {info.hostname}", f"X-Postfix-Queue-ID: {info.queue_id}",
           f"X-Postfix-Sender: rfc822; {info.sender}"]
    if info.envid:
        out.append(f"Original-Envelope-Id: {info.envid}")  # RFC 3464 §2.2.1
    out.append(f"Arrival-Date: {email.utils.formatdate(info.arrival, localtime=True)}")
    for r in reports:
        out.append("")
        out.append(f"Final-Recipient: rfc822; {r.final}")
        if r.original:
            orig = r.original if ";" in r.original else f"rfc822;{r.original}"
            out.append(f"Original-Recipient: {orig}")
        out.append(f"Action: {_ACTION[info.kind]}")
        out.append(f"Status: {r.dsn}")
        if r.relay and r.relay not in ("none", "virtual", "local"):
            out.append(f"Remote-MTA: dns; {r.relay.partition('[')[0]}")
        if r.text:
            out.append(f"Diagnostic-Code: {diagnostic(r.text)}")
        if info.kind == "delay" and info.retry_until:
            out.append(f"Will-Retry-Until: {email.utils.formatdate(info.retry_until, localtime=True)}")
    # one field per line: no value (ENVID, ORCPT, a remote server's reply) can start another
    return "\n".join(map(printable, out)) + "\n\n"


def build_notice(info: NoticeInfo, reports: Sequence[RecipientReport], original: bytes,
                 *, message_id: str) -> bytes:
    """The notice as LF-terminated bytes (the spool keeps what SMTP gave; delivery normalizes)."""
    boundary = f"{info.queue_id}.{int(info.now)}/{info.hostname}"
    subject = SUBJECTS[info.kind]
    if info.postmaster_copy:
        subject = f"Postmaster Copy: {subject}"
    head = [
        f"From: MAILER-DAEMON@{info.hostname} (Mail Delivery System)",
        f"Subject: {subject}",
        f"To: {printable(info.to)}",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"',
        "Content-Transfer-Encoding: 8bit",
        f"Message-Id: <{message_id}>",
        f"Date: {email.utils.formatdate(info.now, localtime=True)}",
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        _human(info, reports),
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        _status_part(info, reports),
    ]
    text = "\n".join(head).encode("utf-8", "replace")
    # RFC 3461 §4.3: RET=HDRS returns headers only; without RET we return the full message when small.
    full = info.ret == "FULL" or (info.ret != "HDRS" and len(original) <= FULL_MESSAGE_LIMIT)
    if info.kind == "success" and info.ret != "FULL":
        full = False
    if full:
        attach = (f"--{boundary}\nContent-Description: {_DESCRIPTION[info.kind]}\n"
                  "Content-Type: message/rfc822\n\n").encode() + to_lf(original)
    else:
        attach = (f"--{boundary}\nContent-Description: {_DESCRIPTION[info.kind]} Headers\n"
                  "Content-Type: text/rfc822-headers\n\n").encode() + to_lf(_header_fields(original))
    if not attach.endswith(b"\n"):
        attach += b"\n"
    return text + attach + f"\n--{boundary}--\n".encode()


def wants_notice(kind: Kind, notify: Sequence[str]) -> bool:
    """RFC 3461 §4.1: NOTIFY=NEVER suppresses everything; an explicit list names what is wanted;
    without NOTIFY, failures and delays are reported, successes not."""
    upper = {n.upper() for n in notify}
    if "NEVER" in upper:
        return False
    if not upper:
        return kind in ("failure", "delay")
    return {"failure": "FAILURE", "delay": "DELAY", "success": "SUCCESS"}[kind] in upper
