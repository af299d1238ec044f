"""The message as stages see it at its end: header fields to read and change, the body untouched.

Implementation notes
- Pure: bytes in, bytes out. The header block is split into fields only when a stage asks for
  them; the body is never copied line by line. A message no stage looked into is passed on as the
  same bytes object; a changed one is joined once, in ``as_bytes``.
- Mail received over SMTP has CRLF line ends, mail the server generates has LF: fields a stage adds
  get the line end the message already uses.
- A header a stage writes cannot break the header block: a name is RFC 5322 field-name text and
  a value may contain line breaks only as folding (a break followed by white space).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CRLF = b"\r\n"
_FIELD = re.compile(rb"[!-9;-~]+:")  # RFC 5322 §3.6.8 field-name, then the colon
_NAME = re.compile(r"[!-9;-~]+")
_BAD_FOLD = re.compile(r"\r|\n(?![ \t])|\x00")


def header_block(content: bytes) -> tuple[list[bytes], int]:
    """The logical header fields (each with its folded lines and line end) and the offset of the
    rest (the empty separator line and the body). A line that is not a header field ends the
    block (RFC 5322 §2.1; lenient like Postfix). Lines end in LF, usually preceded by CR."""
    headers: list[bytes] = []
    pos, n = 0, len(content)
    while pos < n:
        eol = content.find(b"\n", pos)
        end = n if eol < 0 else eol + 1
        line = content[pos:end].rstrip(CRLF)
        if not line:
            return headers, pos
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += content[pos:end]
        elif _FIELD.match(line):
            headers.append(content[pos:end])
        else:
            return headers, pos
        pos = end
    return headers, n


def field_name(header: bytes) -> str:
    return header.partition(b":")[0].decode("ascii", "replace").strip().lower()


def has_field(headers: Sequence[bytes], name: str) -> bool:
    name = name.lower()
    return any(field_name(h) == name for h in headers)


class Message:
    """The content at the end of a message. ``headers`` is the list of fields (each with its
    folded lines and line end), which stages may also edit in place; ``rest`` the empty separator
    line and the body as they came (a memoryview, not a copy)."""

    __slots__ = ("_content", "_eol", "_headers", "_rest")

    def __init__(self, content: bytes) -> None:
        self._content = content
        self._headers: list[bytes] | None = None
        self._rest: bytes | memoryview = b""
        self._eol = b""

    @property
    def headers(self) -> list[bytes]:
        return self._headers if self._headers is not None else self._split()

    def _split(self) -> list[bytes]:
        self._headers, body_at = header_block(self._content)
        self._rest = memoryview(self._content)[body_at:]
        return self._headers

    @property
    def eol(self) -> bytes:
        """The line end this message uses (CRLF unless its first line ends in a bare LF)."""
        if not self._eol:
            lf = self._content.find(b"\n")
            self._eol = b"\n" if lf == 0 or (lf > 0 and self._content[lf - 1] != 13) else CRLF
        return self._eol

    @property
    def rest(self) -> bytes | memoryview:
        if self._headers is None:
            self._split()
        return self._rest

    @property
    def body(self) -> bytes:
        """The body after the empty separator line (a copy: for reading, not for passing on)."""
        rest = bytes(self.rest)
        for sep in (CRLF, b"\n"):
            if rest.startswith(sep):
                return rest[len(sep):]
        return rest

    def replace_body(self, body: bytes) -> None:
        if self._headers is None:
            self._split()
        self._rest = self.eol + body

    def values(self, name: str) -> list[str]:
        """The values of the fields called ``name``, without the name and the first blank; folding
        line breaks are kept as "\\n"."""
        want = name.lower()
        return [_value(h) for h in self.headers if field_name(h) == want]

    def get(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    def add_header(self, name: str, value: str) -> None:
        """Append a field after the last one (milter ``smfi_addheader``)."""
        self.headers.append(self._field(name, value))

    def insert_header(self, index: int, name: str, value: str) -> None:
        """Insert a field before the ``index``-th one, 0 at the top (milter ``smfi_insheader``)."""
        self.headers.insert(index, self._field(name, value))

    def change_header(self, name: str, value: str, occurrence: int = 1) -> None:
        """Replace the ``occurrence``-th field called ``name`` (counting from 1); when there are
        fewer, add it (milter ``smfi_chgheader``)."""
        at = self._find(name, occurrence)
        if at is None:
            self.add_header(name, value)
        else:
            self.headers[at] = self._field(name, value)

    def delete_header(self, name: str, occurrence: int = 1) -> bool:
        at = self._find(name, occurrence)
        if at is None:
            return False
        del self.headers[at]
        return True

    def as_bytes(self) -> bytes:
        """The message to queue: the same object when no stage split it, else joined once."""
        if self._headers is None:
            return self._content
        return b"".join([*self._headers, self._rest])

    def _find(self, name: str, occurrence: int) -> int | None:
        want, seen = name.lower(), 0
        for i, h in enumerate(self.headers):
            if field_name(h) == want:
                seen += 1
                if seen == occurrence:
                    return i
        return None

    def _field(self, name: str, value: str) -> bytes:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a header field name: {name!r}")
        if _BAD_FOLD.search(value):
            raise ValueError(f"{name}: a line break in a header value must be folding")
        eol = self.eol.decode()
        return f"{name}: {value.replace(chr(10), eol)}{eol}".encode("utf-8", "surrogateescape")


def _value(header: bytes) -> str:
    text = header.partition(b":")[2].decode("utf-8", "surrogateescape")
    return text.removeprefix(" ").rstrip("\r\n").replace("\r\n", "\n")
