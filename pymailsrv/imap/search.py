"""SEARCH keys (RFC 3501 §6.4.4): the grammar and a pure evaluator.

Keys parse into a small tree of ``SearchKey``. Evaluation asks a ``Candidate`` for what it needs;
only keys on headers or text make it read the message (``needs_content``), so a FLAGS/UID/SIZE
search never touches the files.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pymailsrv.imap.grammar import Reader


@dataclass(frozen=True, slots=True)
class SearchKey:
    op: str  # AND, OR, NOT, ALL, FLAG, NOFLAG, NEW, OLD, RECENT, HEADER, ADDRESS, BODY, TEXT, SEQ,
    #          UID, LARGER, SMALLER, BEFORE, ON, SINCE, SENTBEFORE, SENTON, SENTSINCE, MODSEQ
    arg: Any = None
    children: tuple[SearchKey, ...] = ()


_FLAG_KEYS = {"ANSWERED": "\\Answered", "DELETED": "\\Deleted", "DRAFT": "\\Draft",
              "FLAGGED": "\\Flagged", "SEEN": "\\Seen"}
_ADDRESS_KEYS = {"BCC", "CC", "FROM", "TO"}
_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
MAX_KEYS = 1000


def parse_search_keys(r: Reader) -> SearchKey:
    """search-key *(SP search-key) → one AND key."""
    count = [0]
    keys = [_key(r, count)]
    while r.maybe(b" "):
        keys.append(_key(r, count))
    return keys[0] if len(keys) == 1 else SearchKey("AND", children=tuple(keys))


def _key(r: Reader, count: list[int]) -> SearchKey:
    from pymailsrv.imap.grammar import GrammarError

    count[0] += 1
    if count[0] > MAX_KEYS:
        raise GrammarError("Too many search keys")
    p = r.peek()
    if p == ord("("):
        items = r.paren(lambda: _key(r, count), allow_empty=False)
        return items[0] if len(items) == 1 else SearchKey("AND", children=tuple(items))
    if p == ord("*") or ord("0") <= p <= ord("9"):
        return SearchKey("SEQ", r.seq_set())
    name = r.atom().upper()
    if name in _FLAG_KEYS:
        return SearchKey("FLAG", _FLAG_KEYS[name])
    if name.startswith("UN") and name[2:] in _FLAG_KEYS:
        return SearchKey("NOFLAG", _FLAG_KEYS[name[2:]])
    if name in ("ALL", "NEW", "OLD", "RECENT"):
        return SearchKey(name)
    if name in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        return SearchKey("FLAG" if name == "KEYWORD" else "NOFLAG", r.flag())
    if name in _ADDRESS_KEYS:
        r.sp()
        return SearchKey("ADDRESS", (name, r.astring()))
    if name == "SUBJECT":
        r.sp()
        return SearchKey("HEADER", (name, r.astring()))
    if name == "HEADER":
        r.sp()
        field = r.astr().upper()
        r.sp()
        return SearchKey("HEADER", (field, r.astring()))
    if name in ("BODY", "TEXT"):
        r.sp()
        return SearchKey(name, r.astring())
    if name in _DATE_KEYS:
        r.sp()
        return SearchKey(name, r.date())
    if name in ("LARGER", "SMALLER"):
        r.sp()
        return SearchKey(name, r.number())
    if name == "UID":
        r.sp()
        return SearchKey("UID", r.seq_set())
    if name == "NOT":
        r.sp()
        return SearchKey("NOT", children=(_key(r, count),))
    if name == "OR":
        r.sp()
        a = _key(r, count)
        r.sp()
        return SearchKey("OR", children=(a, _key(r, count)))
    if name == "MODSEQ":  # RFC 7162 §3.1.5 (entry-name and type are optional, ignored)
        r.sp()
        if r.peek() == ord('"'):
            r.quoted()
            r.sp()
            r.atom()
            r.sp()
        return SearchKey("MODSEQ", r.number(2**63 - 1))
    raise GrammarError(f"Unknown search key {name}")


class Candidate(Protocol):
    """One message as the evaluator sees it. Content accessors are only called when a key needs
    them (``needs_content``)."""

    seq: int
    uid: int
    flags: frozenset[str]
    recent: bool
    size: int
    internal_date: float
    modseq: int

    def header(self, name: str) -> list[str]:
        """Decoded values (encoded words decoded) of every header line named ``name``."""
        ...

    def addresses(self, name: str) -> list[str]:
        """Every header line named ``name`` as its addresses (``Name <user@host>``, decoded)."""
        ...

    def sent_day(self) -> float | None:
        """Midnight UTC of the Date: header's own calendar day."""
        ...

    def body_text(self) -> str:
        """The decoded text of the body parts (transfer encodings undone)."""
        ...

    def all_headers_text(self) -> str: ...


def needs_content(key: SearchKey) -> bool:
    if key.op in ("HEADER", "ADDRESS", "BODY", "TEXT", "SENTBEFORE", "SENTON", "SENTSINCE"):
        return True
    return any(needs_content(c) for c in key.children)


def _day(t: float) -> float:
    """Midnight (UTC) of the day of t: RFC 3501 date comparisons disregard time and timezone."""
    g = time.gmtime(t)
    return float(calendar.timegm((g.tm_year, g.tm_mon, g.tm_mday, 0, 0, 0, 0, 0, 0)))


def in_seqset(n: int, seqset: tuple[tuple[int | None, int | None], ...], star: int) -> bool:
    for lo, hi in seqset:
        a = star if lo is None else lo
        b = star if hi is None else hi
        if a > b:
            a, b = b, a
        if a <= n <= b:
            return True
    return False


def matches(key: SearchKey, m: Candidate, max_seq: int, max_uid: int) -> bool:
    op = key.op
    if op == "AND":
        return all(matches(c, m, max_seq, max_uid) for c in key.children)
    if op == "OR":
        return any(matches(c, m, max_seq, max_uid) for c in key.children)
    if op == "NOT":
        return not matches(key.children[0], m, max_seq, max_uid)
    if op == "ALL":
        return True
    if op == "FLAG":
        return key.arg in m.flags or (key.arg == "\\Recent" and m.recent)
    if op == "NOFLAG":
        return not (key.arg in m.flags or (key.arg == "\\Recent" and m.recent))
    if op == "NEW":
        return m.recent and "\\Seen" not in m.flags
    if op == "OLD":
        return not m.recent
    if op == "RECENT":
        return m.recent
    if op == "SEQ":
        return in_seqset(m.seq, key.arg, max_seq)
    if op == "UID":
        return in_seqset(m.uid, key.arg, max_uid)
    if op == "LARGER":
        return bool(m.size > key.arg)
    if op == "SMALLER":
        return bool(m.size < key.arg)
    if op == "MODSEQ":
        return bool(m.modseq >= key.arg)
    if op in ("BEFORE", "ON", "SINCE"):
        return _cmp_day(op, _day(m.internal_date), key.arg)
    if op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        day = m.sent_day()
        return _cmp_day(op[4:], _day(m.internal_date) if day is None else day, key.arg)
    if op in ("HEADER", "ADDRESS"):
        field, value = key.arg
        needle = _needle(value)
        # RFC 3501 §6.4.4: FROM, TO, CC, BCC match the envelope's addresses, names included
        values = m.header(field) if op == "HEADER" else m.addresses(field)
        if not needle:
            return bool(values)
        return any(needle in v.casefold() for v in values)
    if op == "BODY":
        return _needle(key.arg) in m.body_text().casefold()
    if op == "TEXT":
        needle = _needle(key.arg)
        return needle in m.all_headers_text().casefold() or needle in m.body_text().casefold()
    raise ValueError(op)


def _cmp_day(op: str, day: float, ref: float) -> bool:
    if op == "BEFORE":
        return day < ref
    if op == "ON":
        return day == ref
    return day >= ref


def _needle(value: bytes) -> str:
    return value.decode("utf-8", "replace").casefold()
