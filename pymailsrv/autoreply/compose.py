"""Writing an automatic reply (RFC 3834 §3): a new message to the envelope sender that refers
to the original (In-Reply-To, References) and says it is automatic (Auto-Submitted)."""

from __future__ import annotations

import email.policy
import email.utils
from dataclasses import dataclass
from email.message import EmailMessage

from pymailsrv.autoreply.rules import X_LOOP
from pymailsrv.message.headers import printable

_POLICY = email.policy.default.clone(linesep="\n", max_line_length=78)
_REFERENCES_KEEP = 10  # ids kept from a long References chain (the first and the last ones)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the responder says: ``sender`` is the user's address (From:), ``to`` the envelope
    sender of the original; ``subject``/``body`` text; ``from_name`` an optional display name."""

    sender: str
    to: str
    subject: str
    body: str
    from_name: str = ""


def _single_line(text: str) -> str:
    return printable(" ".join(text.split()))


def _references(original: EmailMessage) -> tuple[str, str]:
    """(In-Reply-To, References) for the reply (RFC 3834 §3, RFC 5322 §3.6.4)."""
    mid = _single_line(str(original.get("Message-ID", "") or ""))
    refs = _single_line(str(original.get("References", "") or "")).split()
    if len(refs) > _REFERENCES_KEEP:
        refs = refs[:1] + refs[-(_REFERENCES_KEEP - 1):]
    if mid:
        refs.append(mid)
    return mid, " ".join(refs)


def compose_reply(reply: Reply, original: EmailMessage, *, hostname: str, now: float,
                  message_id: str) -> bytes:
    """The reply as LF-terminated bytes, ready for the queue. ``message_id`` without brackets."""
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = email.utils.formataddr((_single_line(reply.from_name), reply.sender)) \
        if reply.from_name else reply.sender
    msg["To"] = reply.to
    msg["Subject"] = _single_line(reply.subject)
    msg["Date"] = email.utils.formatdate(now, localtime=True)
    msg["Message-ID"] = f"<{message_id}>"
    in_reply_to, references = _references(original)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = references
    msg["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5
    msg["Precedence"] = "junk"  # what vacation.pl sends; older list software looks for it
    msg["X-Loop"] = X_LOOP
    body = reply.body.replace("\r\n", "\n")
    msg.set_content(body if body.endswith("\n") else body + "\n", charset="utf-8")
    return msg.as_bytes(policy=_POLICY)
