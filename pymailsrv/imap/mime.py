"""MIME structure for FETCH and SEARCH: ENVELOPE, BODYSTRUCTURE, sections (RFC 3501 §6.4.5,
§7.4.2). Pure: bytes in, bytes out.

Implementation notes:
- Messages are normalised to CRLF first (Maildir files usually use LF; message/lines.py); every
  size, offset and line count is of the CRLF form, so they agree with ``MessageInfo.size``
  (RFC822.SIZE).
- Broken MIME never raises: a multipart without boundary is read as text/plain, a missing close
  delimiter ends the last part at the end of the body, nesting deeper than MAX_DEPTH is flat.
- Header values in ENVELOPE/BODYSTRUCTURE are sent as they are in the message (encoded words
  stay encoded; RFC 3501 leaves decoding to the client).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import email.errors
import email.header
import email.utils
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from pymailsrv.imap import addresses
from pymailsrv.imap.grammar import Section
from pymailsrv.imap.wire import nstring, string
from pymailsrv.message.lines import body_start

MAX_DEPTH = 20
MAX_PARTS = 2000
_FIELD_NAME = re.compile(rb"[!-9;-~]+\Z")
_PARAM_RE = re.compile(rb'\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@dataclass(slots=True)
class Part:
    header: bytes  # the header block including the empty line that ends it ("" if none)
    body: bytes
    fields: list[tuple[bytes, bytes]]  # (lower-case name, raw unfolded value)
    maintype: bytes = b"text"
    subtype: bytes = b"plain"
    params: list[tuple[bytes, bytes]] = field(default_factory=list)
    children: list[Part] = field(default_factory=list)
    message: Part | None = None  # the encapsulated message of message/rfc822

    def get(self, name: bytes) -> bytes | None:
        for n, v in self.fields:
            if n == name:
                return v
        return None

    def get_all(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.fields if n == name]

    @property
    def is_multipart(self) -> bool:
        return self.maintype == b"multipart"


def parse_fields(header: bytes) -> list[tuple[bytes, bytes]]:
    fields: list[tuple[bytes, bytes]] = []
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, value + line)
            continue
        name, sep, value = line.partition(b":")
        if sep and _FIELD_NAME.match(name):  # RFC 5322 ftext only
            fields.append((name.lower(), value.lstrip(b" \t")))
    return fields


def split_message(data: bytes) -> tuple[bytes, bytes]:
    """(header block incl. its blank line, body)."""
    start = body_start(data)
    if start < 0:
        return data, b""
    return data[:start], data[start:]


def single_part_body(data: bytes) -> bytes | None:
    """The body of a message that is not a multipart (what BODY[1] is then, as ``section``
    of ``parse`` would find it), None for a multipart, without parsing its parts."""
    header, body = split_message(data)
    ct = None
    for name, value in parse_fields(header):
        if name == b"content-type":
            ct = value
            break
    maintype, _, params = parse_content_type(ct)
    if maintype == b"multipart" and dict(params).get(b"boundary"):
        return None
    return body


def parse_content_type(value: bytes | None) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    if value is None:
        return b"text", b"plain", [(b"charset", b"us-ascii")]
    main, _, rest = value.partition(b";")
    mtype, slash, sub = main.strip().partition(b"/")
    if not slash or not mtype.strip() or not sub.strip():
        return b"text", b"plain", [(b"charset", b"us-ascii")]
    return mtype.strip().lower(), sub.strip().lower(), parse_params(rest)


_CONT = re.compile(rb"(.+)\*(\d+)(\*?)\Z")


def parse_params(text: bytes) -> list[tuple[bytes, bytes]]:
    """Parameters in order; RFC 2231 continuations (name*0*, name*1 …) joined into one
    ``name*`` (or ``name``) value, as Dovecot shows them."""
    params = _raw_params(text)
    if not any(_CONT.match(k) for k, _ in params):
        return params
    out: list[tuple[bytes, bytes]] = []
    groups: dict[bytes, list[tuple[int, bool, bytes]]] = {}
    for k, v in params:
        m = _CONT.match(k)
        if m is None:
            out.append((k, v))
            continue
        if m.group(1) not in groups:
            groups[m.group(1)] = []
            out.append((m.group(1), b""))  # placeholder keeps the position
        groups[m.group(1)].append((int(m.group(2)), bool(m.group(3)), v))
    result = []
    for k, v in out:
        pieces = groups.get(k)
        if pieces is None:
            result.append((k, v))
            continue
        pieces.sort()
        extended = any(e for _, e, _ in pieces)
        result.append((k + b"*" if extended else k, b"".join(p for _, _, p in pieces)))
    return result


def _raw_params(text: bytes) -> list[tuple[bytes, bytes]]:
    params: list[tuple[bytes, bytes]] = []
    for m in _PARAM_RE.finditer(text):
        value = m.group(2).strip()
        if value.startswith(b'"') and value.endswith(b'"') and len(value) >= 2:
            value = re.sub(rb"\\(.)", rb"\1", value[1:-1])
        params.append((m.group(1).lower(), value))
        if len(params) > 100:
            break
    return params


def parse(data: bytes, depth: int = 0, default_type: bytes = b"text/plain",
          counter: list[int] | None = None) -> Part:
    """Parse a CRLF message (or a MIME part) into a Part tree."""
    counter = counter if counter is not None else [0]
    counter[0] += 1
    header, body = split_message(data)
    fields = parse_fields(header)
    part = Part(header, body, fields)
    ct = part.get(b"content-type")
    if ct is None and default_type == b"message/rfc822":
        part.maintype, part.subtype, part.params = b"message", b"rfc822", []
    else:
        part.maintype, part.subtype, part.params = parse_content_type(ct)
        if part.maintype == b"text" and not any(k == b"charset" for k, _ in part.params):
            part.params.insert(0, (b"charset", b"us-ascii"))
    if depth >= MAX_DEPTH or counter[0] > MAX_PARTS:
        if part.maintype in (b"multipart", b"message") and part.subtype != b"plain":
            part.maintype, part.subtype = b"application", b"octet-stream"
        return part
    if part.is_multipart:
        boundary = dict(part.params).get(b"boundary")
        if not boundary:
            part.maintype, part.subtype, part.params = b"text", b"plain", [(b"charset", b"us-ascii")]
            return part
        child_default = b"message/rfc822" if part.subtype == b"digest" else b"text/plain"
        for chunk, followed_by_crlf in split_multipart(body, boundary):
            child = parse(chunk, depth + 1, child_default, counter)
            if followed_by_crlf and _ends_closed(child):
                _extend(child, b"\r\n")
            part.children.append(child)
        if not part.children:
            part.children.append(parse(b"", depth + 1, child_default, counter))
    elif part.maintype == b"message" and part.subtype in (b"rfc822", b"global"):
        part.message = parse(body, depth + 1, b"text/plain", counter)
    return part


def _ends_closed(part: Part) -> bool:
    """True when a multipart (possibly inside message/rfc822) ends right at its close
    delimiter: the line end after it then counts as the part's (Dovecot's sizes)."""
    inner = part.message if part.message is not None else part
    if not inner.is_multipart:
        return False
    boundary = dict(inner.params).get(b"boundary", b"")
    return bool(boundary) and re.search(b"--" + re.escape(boundary) + rb"--[ \t]*\Z", inner.body) is not None


def _extend(part: Part, tail: bytes) -> None:
    part.body += tail
    if part.message is not None:
        part.message.body += tail


def split_multipart(body: bytes, boundary: bytes) -> list[tuple[bytes, bool]]:
    """The parts between ``--boundary`` delimiter lines (RFC 2046 §5.1.1), each with whether a
    line end (the delimiter's) follows it."""
    parts: list[tuple[bytes, bool]] = []
    start = -1
    for begin, m in _delimiters(body, boundary):
        if start >= 0:
            parts.append((body[start:begin], body.startswith(b"\r\n", begin)))
        if m.group(1):
            return parts
        start = m.end()
        if len(parts) >= MAX_PARTS:
            return parts
    if start >= 0:
        parts.append((body[start:], False))
    return parts


def _delimiters(body: bytes, boundary: bytes) -> Iterator[tuple[int, re.Match[bytes]]]:
    """(where it begins, its match) of each delimiter line: at the start of the body, or after a
    CRLF that the previous delimiter's line end did not take. ``bytes.find`` looks for them (a
    regex that begins with an alternation tries every position of an attachment in Python)."""
    line = re.compile(b"--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|\Z)")
    needle = b"\r\n--" + boundary
    at = 0
    m = line.match(body)
    if m is not None:
        yield 0, m
        at = m.end()
    while (pos := body.find(needle, at)) >= 0:
        m = line.match(body, pos + 2)
        if m is None:
            at = pos + 1
            continue
        yield pos, m
        at = m.end()


# --- ENVELOPE -------------------------------------------------------------------------------

def _unfold(value: bytes | None) -> bytes | None:
    if value is None:
        return None
    return value.replace(b"\r\n", b"").strip()


def envelope(msg: Part) -> bytes:
    """RFC 3501 §7.4.2 ENVELOPE of a message."""
    def h(name: bytes) -> bytes:
        return nstring(_unfold(msg.get(name)))

    frm = _addresses(msg.get(b"from"))
    sender = _addresses(msg.get(b"sender")) if msg.get(b"sender") else frm
    reply_to = _addresses(msg.get(b"reply-to")) if msg.get(b"reply-to") else frm
    items = [h(b"date"), h(b"subject"), frm, sender, reply_to, _addresses(msg.get(b"to")),
             _addresses(msg.get(b"cc")), _addresses(msg.get(b"bcc")), h(b"in-reply-to"),
             h(b"message-id")]
    return b"(" + b" ".join(items) + b")"


def _addresses(value: bytes | None) -> bytes:
    if value is None:
        return b"NIL"
    addrs = addresses.parse(_unfold(value) or b"")
    if not addrs:
        return b"NIL"
    out = []
    for name, route, mailbox, host in addrs:
        if host is not None:  # a NIL host would mean a group marker: Dovecot's placeholders instead
            mailbox, host = mailbox or b"MISSING_MAILBOX", host or b"MISSING_DOMAIN"
        out.append(b"(" + b" ".join([nstring(name), nstring(route), nstring(mailbox), nstring(host)]) + b")")
    return b"(" + b"".join(out) + b")"


# --- BODYSTRUCTURE ----------------------------------------------------------------------------

def _plist(params: list[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(string(k.upper()) + b" " + string(v) for k, v in params) + b")"


def _disposition(part: Part) -> bytes:
    value = part.get(b"content-disposition")
    if value is None:
        return b"NIL"
    kind, _, rest = value.partition(b";")
    if not kind.strip():
        return b"NIL"
    return b"(" + string(kind.strip().lower()) + b" " + _plist(parse_params(rest)) + b")"


def _language(part: Part) -> bytes:
    value = part.get(b"content-language")
    if value is None:
        return b"NIL"
    langs = [x.strip() for x in _unfold(value).split(b",") if x.strip()]  # type: ignore[union-attr]
    if not langs:
        return b"NIL"
    if len(langs) == 1:
        return string(langs[0])
    return b"(" + b" ".join(string(x) for x in langs) + b")"


def _lines(body: bytes) -> int:
    """Line count as Dovecot reports it: the number of line ends."""
    return body.count(b"\n")


def bodystructure(part: Part, extended: bool = True) -> bytes:
    """BODYSTRUCTURE (``extended``) or BODY of a part (RFC 3501 §7.4.2)."""
    if part.is_multipart:
        kids = b"".join(bodystructure(c, extended) for c in part.children)
        out = kids + b" " + string(part.subtype.upper())
        if extended:
            out += b" " + b" ".join([_plist(part.params), _disposition(part), _language(part),
                                     nstring(_unfold(part.get(b"content-location")))])
        return b"(" + out + b")"
    items = [string(part.maintype.upper()), string(part.subtype.upper()), _plist(part.params),
             nstring(_unfold(part.get(b"content-id"))), nstring(_unfold(part.get(b"content-description"))),
             string((_unfold(part.get(b"content-transfer-encoding")) or b"7BIT").upper()),
             str(len(part.body)).encode()]
    if part.message is not None:
        items += [envelope(part.message), bodystructure(part.message, extended),
                  str(_lines(part.body)).encode()]
    elif part.maintype == b"text":
        items.append(str(_lines(part.body)).encode())
    if extended:
        items += [nstring(_unfold(part.get(b"content-md5"))), _disposition(part), _language(part),
                  nstring(_unfold(part.get(b"content-location")))]
    return b"(" + b" ".join(items) + b")"


# --- sections ------------------------------------------------------------------------------------

def _resolve(root: Part, path: tuple[int, ...]) -> Part | None:
    """The part a section number names (RFC 3501 §6.4.5): children of multiparts; the body
    of a message/rfc822 part continues the numbering; part 1 of a single part is itself."""
    cur = root
    for depth, k in enumerate(path):
        if depth > 0 and not cur.is_multipart and cur.message is not None:
            cur = cur.message
        if cur.is_multipart:
            if k > len(cur.children):
                return None
            cur = cur.children[k - 1]
        elif k != 1:
            return None
    return cur


def header_fields(header: bytes, names: tuple[str, ...], exclude: bool) -> bytes:
    """The header lines named (or, with ``exclude``, not named) in ``names``, plus the blank line."""
    wanted = {n.lower().encode("ascii", "replace") for n in names}
    out: list[bytes] = []
    keep = False
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.partition(b":")[0].strip().lower()
        keep = (name in wanted) != exclude
        if keep:
            out.append(line)
    return b"".join(x + b"\r\n" for x in out) + b"\r\n"


def section(root: Part, whole: bytes, sec: Section) -> bytes | None:
    """The bytes of BODY[section] (None when the part does not exist: the answer is NIL/empty)."""
    if not sec.part:
        target: Part | None = root
        if not sec.text:
            return whole
    else:
        target = _resolve(root, sec.part)
        if target is None:
            return None
        if not sec.text:
            return target.body
        if sec.text == "MIME":
            return target.header
        if target.message is None:
            return None
        target = target.message
    assert target is not None
    if sec.text == "HEADER":
        return target.header
    if sec.text == "TEXT":
        return target.body
    return header_fields(target.header, sec.fields, sec.text.endswith(".NOT"))


# --- SEARCH helpers ---------------------------------------------------------------------------

def decode_header_value(value: bytes) -> str:
    """Unfolded header value with RFC 2047 encoded words decoded (robust)."""
    text = (_unfold(value) or b"").decode("utf-8", "replace")
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        return text


def address_text(value: bytes) -> str:
    """An address header as SEARCH FROM/TO/CC/BCC match it: every address as ``Name <route:
    user@host>`` (names decoded, comments and folding gone), groups as ``group: …;``."""
    out, sep = "", ""
    for name, route, mailbox, host in addresses.parse(_unfold(value) or b""):
        if host is None:  # a group's start or end
            out, sep = (out + ";", ", ") if mailbox is None else (out + sep + decode_header_value(mailbox) + ":", " ")
            continue
        spec = ((route + b":" if route else b"") + (mailbox or b"") + (b"@" + host if host else b"")).decode(
            "utf-8", "replace")
        out, sep = out + sep + (f"{decode_header_value(name)} <{spec}>" if name else spec), ", "
    return out


def _date_tuple(msg: Part) -> tuple[int, int, int, int, int, int, int, int, int, int | None] | None:
    value = msg.get(b"date")
    if value is None:
        return None
    try:
        return email.utils.parsedate_tz(value.decode("ascii", "replace"))
    except (TypeError, ValueError, IndexError):
        return None


def sent_date(msg: Part) -> float | None:
    """The Date: header as a timestamp (UTC), for SORT and THREAD (RFC 5256 §2.2)."""
    t = _date_tuple(msg)
    if t is None:
        return None
    try:
        return float(email.utils.mktime_tz(t))
    except (OverflowError, ValueError):
        return None


def sent_day(msg: Part) -> float | None:
    """Midnight UTC of the Date: header's day in its own timezone: SENTBEFORE/SENTON/SENTSINCE
    disregard the time and the timezone (RFC 3501 §6.4.4)."""
    t = _date_tuple(msg)
    if t is None:
        return None
    try:
        return float(calendar.timegm((t[0], t[1], t[2], 0, 0, 0, 0, 0, 0)))
    except (OverflowError, ValueError):
        return None


def decoded_body(part: Part) -> bytes:
    cte = (_unfold(part.get(b"content-transfer-encoding")) or b"").lower()
    try:
        if cte == b"base64":
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", part.body) + b"==", validate=False)
        if cte == b"quoted-printable":
            return quopri.decodestring(part.body)
    except (binascii.Error, ValueError):
        return part.body
    return part.body


def body_text(root: Part) -> str:
    """Decoded text of every text part (and of encapsulated messages), for BODY/TEXT search."""
    out: list[str] = []
    stack = [root]
    while stack:
        p = stack.pop()
        if p.is_multipart:
            stack.extend(reversed(p.children))
        elif p.message is not None:
            out.append(_headers_text(p.message))
            stack.append(p.message)
        elif p.maintype in (b"text", b"message"):
            charset = dict(p.params).get(b"charset", b"utf-8").decode("ascii", "replace")
            raw = decoded_body(p)
            try:
                out.append(raw.decode(charset, "replace"))
            except LookupError:
                out.append(raw.decode("utf-8", "replace"))
    return "\n".join(out)


def _headers_text(msg: Part) -> str:
    return "\n".join(n.decode("ascii", "replace") + ": " + decode_header_value(v) for n, v in msg.fields)


def headers_text(msg: Part) -> str:
    return _headers_text(msg)
