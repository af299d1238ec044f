"""The message as a Sieve script sees it: header fields (decoded, editable), addresses, body text.

Pure module. The header block is split once; ``editheader`` changes a copy of the field list so
a store action taken earlier keeps the header it saw (RFC 5293 §3). Bodies are parsed with the
standard library's email package only when a ``body`` test asks.
"""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from email.message import Message

MAX_HEADER_VALUE = 64 * 1024  # longer values are cut before matching (bounded work per test)


@dataclass(slots=True)
class Envelope:
    sender: str  # "" for the null reverse-path
    recipient: str  # the original recipient (envelope "to")
    auth: str = ""  # the SASL login that submitted it, when known


@dataclass(slots=True)
class SieveMessage:
    """``content`` uses LF line ends (as the Maildir store keeps files)."""

    content: bytes
    fields: list[tuple[str, str]] = field(default_factory=list)  # (name, raw value with folding)
    body_offset: int = 0
    _parsed: Message | None = None
    # decoded values and addresses, per field name / raw value (rules test the same fields again
    # and again); editheader clears them
    _values: dict[str, list[str]] = field(default_factory=dict)
    _addresses: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, content: bytes) -> SieveMessage:
        fields: list[tuple[str, str]] = []
        end = _header_end(content)
        head = content[:end].decode("utf-8", "surrogateescape")
        for line in head.split("\n"):
            if not line:
                continue
            if line[0] in " \t" and fields:
                name, value = fields[-1]
                fields[-1] = (name, value + "\n" + line)
            elif ":" in line:
                name, _, value = line.partition(":")
                fields.append((name.strip(), value))
        body = end + (2 if content[end:end + 2] == b"\n\n" else 1) if end < len(content) else end
        return cls(content, fields, min(body, len(content)))

    @property
    def size(self) -> int:
        """RFC 5228 §5.9: the size as it would be on the wire (CRLF line ends)."""
        return len(self.content) + self.content.count(b"\n")

    def raw_values(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self.fields if k.lower() == n]

    def values(self, name: str) -> list[str]:
        """Unfolded, RFC 2047-decoded values with surrounding whitespace trimmed (RFC 5228 §5.7)."""
        key = name.lower()
        found = self._values.get(key)
        if found is None:
            found = self._values[key] = [decode_header(v) for v in self.raw_values(name)]
        return found

    def exists(self, name: str) -> bool:
        n = name.lower()
        return any(k.lower() == n for k, _ in self.fields)

    def addresses_of(self, raw: str) -> list[tuple[str, bool]]:
        """The addresses of one address header field, groups flattened (RFC 5228 §5.1), each
        with whether it is valid. A field that holds no valid address list is one invalid
        "address", its whole value: ``:all`` can still match it, ``:localpart`` and ``:domain``
        cannot (RFC 5228 §2.7.4; Pigeonhole does the same)."""
        found = self._addresses.get(raw)
        if found is None:
            value = decode_header(raw)
            parsed = [addr for _display, addr in email.utils.getaddresses([value])]
            if parsed and all("@" in a for a in parsed):
                found = [(a, True) for a in parsed]
            else:
                found = [(value, False)] if value else []
            self._addresses[raw] = found
        return found

    def body_bytes(self) -> bytes:
        return self.content[self.body_offset:]

    def email_message(self) -> Message:
        if self._parsed is None:
            self._parsed = email.message_from_bytes(self.content, policy=email.policy.compat32)
        return self._parsed

    # editheader (RFC 5293)
    def add_field(self, name: str, value: str, last: bool) -> None:
        entry = (name, " " + value)
        self.fields = [*self.fields, entry] if last else [entry, *self.fields]
        self._values.clear()

    def delete_fields(self, keep: list[tuple[str, str]]) -> None:
        self.fields = keep
        self._values.clear()

    def render(self) -> bytes:
        """The message with the current header fields and the unchanged body."""
        head = "".join(f"{k}:{v}\n" for k, v in self.fields).encode("utf-8", "surrogateescape")
        return head + b"\n" + self.body_bytes()


def _header_end(content: bytes) -> int:
    if content.startswith(b"\n"):
        return 0
    i = content.find(b"\n\n")
    return len(content) if i < 0 else i + 1


def unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def decode_header(raw: str) -> str:
    value = unfold(raw).strip()[:MAX_HEADER_VALUE]
    if "=?" not in value:
        return value
    try:
        parts = email.header.decode_header(value)
    except (ValueError, LookupError):
        return value
    out: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            try:
                out.append(chunk.decode(charset or "ascii", "replace"))
            except LookupError:
                out.append(chunk.decode("ascii", "replace"))
    return "".join(out)


def content_matches(ctype: str, wanted: str) -> bool:
    """RFC 5173 §5.2: "" matches every part, "type" every subtype, "type/sub" exactly."""
    if wanted == "":
        return True
    if wanted.startswith("/") or wanted.endswith("/") or wanted.count("/") > 1:
        return False
    if "/" in wanted:
        return ctype.lower() == wanted.lower()
    return ctype.split("/")[0].lower() == wanted.lower()


def body_texts(msg: SieveMessage, transform: str, types: list[str]) -> list[str]:
    """The strings a ``body`` test matches (RFC 5173 §5): the raw body, or the decoded content
    of the parts whose type is wanted (``:text`` is ``:content "text"``)."""
    if transform == "raw":
        return [msg.body_bytes().decode("utf-8", "replace")]
    if transform == "text":
        types = ["text"]
    out: list[str] = []
    for part in msg.email_message().walk():
        ctype = part.get_content_type()
        if part.is_multipart():
            if any(content_matches(ctype, t) for t in types if t):
                out += [x for x in (part.preamble, part.epilogue) if x]
            continue
        if not any(content_matches(ctype, t) for t in types):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "us-ascii"
        try:
            out.append(payload.decode(charset, "replace"))
        except LookupError:
            out.append(payload.decode("utf-8", "replace"))
    return out
