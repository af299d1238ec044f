"""Address headers (RFC 5322 §3.4, with the obsolete route and comment forms) as IMAP address
structures (RFC 3501 §7.4.2). Pure, and lenient: broken input gives what can be read, never an
exception.

Implementation notes:
- A group is a start marker ``(NIL NIL "name" NIL)``, its members, and an end marker
  ``(NIL NIL NIL NIL)`` (RFC 3501 §7.4.2).
- ``user@host (Real Name)`` is the RFC 822 way to give a display name: the comment becomes the
  name when there is no phrase (as Dovecot does); other comments are dropped.
- Display names stay as written (encoded words undecoded): RFC 3501 leaves decoding to clients.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_ADDRESSES = 1000
ATOM, QUOTED, COMMENT, SPECIAL = range(4)
Token = tuple[int, bytes]
_LEX = re.compile(rb'\s+|"((?:[^"\\]|\\.)*)"?|([<>@,;:])|([^\s"<>@,;:()]+)', re.DOTALL)
_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_COMMA, _COLON, _SEMI, _LT, _GT, _AT = ((SPECIAL, c) for c in (b",", b":", b";", b"<", b">", b"@"))


class Address(NamedTuple):
    name: bytes | None
    route: bytes | None
    mailbox: bytes | None  # the group name in a group start marker
    host: bytes | None  # None only in group markers


def tokens(text: bytes) -> list[Token]:
    """Words, quoted strings (unescaped), comments (nesting undone) and specials; no spaces."""
    out: list[Token] = []
    i = 0
    while i < len(text):
        if text[i] == 0x28:  # "("
            i = _comment(text, i, out)
            continue
        m = _LEX.match(text, i)
        if m is None:  # a stray ")"
            i += 1
            continue
        quoted, special, word = m.groups()
        if quoted is not None:
            out.append((QUOTED, _ESCAPE.sub(rb"\1", quoted)))
        elif special is not None:
            out.append((SPECIAL, special))
        elif word is not None:
            out.append((ATOM, word))
        i = m.end()
    return out


def _comment(text: bytes, i: int, out: list[Token]) -> int:
    """Read the (possibly nested) comment at text[i] into out; the index after it."""
    depth, buf = 0, bytearray()
    while i < len(text):
        c = text[i]
        i += 1
        if c == 0x5C and i < len(text):  # quoted-pair
            buf.append(text[i])
            i += 1
            continue
        if c == 0x28:
            depth += 1
            if depth == 1:
                continue
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                break
        buf.append(c)
    out.append((COMMENT, bytes(buf)))
    return i


def parse(text: bytes) -> list[Address]:
    """The addresses and groups of an (unfolded) address header, in order."""
    toks = tokens(text)
    result: list[Address] = []
    i = 0
    while i < len(toks) and len(result) < MAX_ADDRESSES:
        # a group "name: a, b;" or one mailbox, up to the next top-level comma
        j = i
        while j < len(toks) and toks[j] not in (_COMMA, _COLON, _LT):
            j += 1
        if j < len(toks) and toks[j] == _COLON:
            result.append(Address(None, None, _phrase(toks[i:j]) or b"", None))
            i = j + 1
            while i < len(toks) and toks[i] != _SEMI:
                k = _mailbox_end(toks, i, group=True)
                addr = _mailbox(toks[i:k])
                if addr:
                    result.append(addr)
                i = k + 1 if k < len(toks) and toks[k] == _COMMA else k
            result.append(Address(None, None, None, None))
            i += 1
            while i < len(toks) and toks[i] == _COMMA:
                i += 1
            continue
        k = _mailbox_end(toks, i, group=False)
        addr = _mailbox(toks[i:k])
        if addr:
            result.append(addr)
        i = k + 1
    return result


def _mailbox_end(toks: list[Token], i: int, group: bool) -> int:
    depth = 0
    while i < len(toks):
        t = toks[i]
        if t == _LT:
            depth += 1
        elif t == _GT:
            depth = max(0, depth - 1)
        elif depth == 0 and (t == _COMMA or (group and t == _SEMI)):
            return i
        i += 1
    return i


def _phrase(toks: list[Token]) -> bytes | None:
    return b" ".join(v for kind, v in toks if kind != COMMENT and v) or None


def _mailbox(toks: list[Token]) -> Address | None:
    words = [t for t in toks if t[0] != COMMENT]
    if not words:
        return None
    name = route = None
    if _LT in words:
        lt = words.index(_LT)
        gt = words.index(_GT, lt) if _GT in words[lt:] else len(words)
        name = _phrase(words[:lt])
        spec = words[lt + 1: gt]
        if _COLON in spec:  # obsolete source route <@a,@b:user@host>
            colon = spec.index(_COLON)
            route = b"".join(v for _, v in spec[:colon]) or None
            spec = spec[colon + 1:]
    else:
        spec = words
    if _AT in spec:
        at = len(spec) - 1 - spec[::-1].index(_AT)
        local, host = b"".join(v for _, v in spec[:at]), b"".join(v for _, v in spec[at + 1:])
    else:
        local, host = b"".join(v for _, v in spec), b""
    if not local and not host and name is None:
        return None
    if name is None and _LT not in words:
        comments = [v.strip() for kind, v in toks if kind == COMMENT and v.strip()]
        name = comments[-1] if comments else None
    return Address(name, route, local, host)
