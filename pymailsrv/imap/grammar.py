"""IMAP command grammar (RFC 3501 §9, RFC 9051 where compatible): segments → typed Command.

Pure. The framing layer (parser.py) hands over a command as line segments and literals; this
module reads the tag, the command name and the arguments of each known command. Unknown
commands parse to ``Command(tag, NAME, None)``: the dispatcher answers them.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymailsrv.imap.search import SearchKey

MAX_NUMBER = 4294967295  # nz-number / number: 32 bits (RFC 3501 §9)
MAX_NUMBER64 = 2**63 - 1  # mod-sequence-value (RFC 7162)
MAX_DEPTH = 50

SeqRange = tuple[int | None, int | None]  # None = "*"
SeqSet = tuple[SeqRange, ...]

_ATOM_SPECIALS = b'(){ %*"\\]'
_ATOM_CHARS = frozenset(c for c in range(0x21, 0x7F) if c not in _ATOM_SPECIALS)
_ASTRING_CHARS = _ATOM_CHARS | {ord("]")}
_LIST_CHARS = _ATOM_CHARS | {ord("]"), ord("%"), ord("*")}
_TAG_CHARS = _ASTRING_CHARS - {ord("+")}
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}


class Literal(bytes):
    """Bytes that arrived as a literal (marks segment boundaries for the grammar)."""


Segment = bytes  # a line segment (bytes) or a Literal


class GrammarError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: str  # upper case; "UID FETCH" for UID commands
    args: Any = None
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Section:
    part: tuple[int, ...] = ()
    text: str = ""  # "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()

    def spec(self) -> str:
        """The section as it is echoed in the FETCH response (RFC 3501 §7.4.2)."""
        parts = [".".join(str(p) for p in self.part)] if self.part else []
        if self.text:
            parts.append(self.text)
        s = ".".join(parts)
        if self.fields:
            s += " (" + " ".join(self.fields) + ")"
        return s


@dataclass(frozen=True, slots=True)
class FetchAtt:
    name: str  # FLAGS, UID, ENVELOPE, BODY, BODYSTRUCTURE, BODY[], RFC822, MODSEQ …
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False


@dataclass(frozen=True, slots=True)
class FetchArgs:
    seqset: SeqSet
    atts: tuple[FetchAtt, ...]
    changedsince: int | None = None
    vanished: bool = False  # RFC 7162 §3.2.6 UID FETCH modifier


@dataclass(frozen=True, slots=True)
class QresyncArgs:
    """SELECT's QRESYNC parameter (RFC 7162 §3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SeqSet | None = None
    seq_match: tuple[SeqSet, SeqSet] | None = None  # (known sequence numbers, their UIDs)


@dataclass(frozen=True, slots=True)
class SelectArgs:
    mailbox: bytes
    params: tuple[str, ...] = ()  # parameter names, upper case
    qresync: QresyncArgs | None = None


@dataclass(frozen=True, slots=True)
class StoreArgs:
    seqset: SeqSet
    mode: str  # set, add, remove
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class SearchArgs:
    key: SearchKey
    charset: str | None = None
    ret: tuple[str, ...] | None = None  # ESEARCH RETURN options (RFC 4731); None = plain SEARCH
    sort: tuple[str, ...] = ()  # SORT criteria (RFC 5256)
    algorithm: str = ""  # THREAD algorithm


@dataclass(frozen=True, slots=True)
class ListArgs:
    ref: bytes
    patterns: tuple[bytes, ...]
    select: tuple[str, ...] = ()
    ret: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    extended: bool = False


@dataclass(frozen=True, slots=True)
class AppendArgs:
    mailbox: bytes
    flags: tuple[str, ...]
    date: float | None
    message: bytes


@dataclass
class Reader:
    """A cursor over a command's segments."""

    segs: list[Segment]
    i: int = 0
    pos: int = 0
    depth: int = field(default=0)
    single: bool = field(init=False)  # one line, no literal: most commands (the fast path)

    def __post_init__(self) -> None:
        self.single = len(self.segs) == 1 and not isinstance(self.segs[0], Literal)

    # --- low level --------------------------------------------------------------------------
    def _line(self) -> bytes | None:
        if self.single:
            return self.segs[0]
        while self.i < len(self.segs):
            seg = self.segs[self.i]
            if isinstance(seg, Literal):
                return None
            if self.pos < len(seg):
                return seg
            if self.i + 1 < len(self.segs):
                self.i += 1
                self.pos = 0
                continue
            return seg
        return b""

    def at_literal(self) -> bool:
        self._line()  # step over an exhausted line segment
        return self.i < len(self.segs) and isinstance(self.segs[self.i], Literal)

    def peek(self) -> int:
        """Next byte, -1 at end of command, -2 when a literal is next."""
        line = self._line()
        if line is None:
            return -2
        if self.pos < len(line):
            return line[self.pos]
        return -1

    def at_end(self) -> bool:
        return self.peek() == -1

    def take(self, n: int = 1) -> bytes:
        line = self._line()
        if line is None or self.pos + n > len(line):
            raise GrammarError("Unexpected end of command")
        s = line[self.pos: self.pos + n]
        self.pos += n
        return s

    def expect(self, s: bytes) -> None:
        line = self._line()
        if line is None or line[self.pos: self.pos + len(s)].upper() != s.upper():
            raise GrammarError(f"Expected {s.decode()!r}")
        self.pos += len(s)

    def maybe(self, s: bytes) -> bool:
        line = self._line()
        if line is not None and line[self.pos: self.pos + len(s)].upper() == s.upper():
            self.pos += len(s)
            return True
        return False

    def sp(self) -> None:
        self.expect(b" ")

    def end(self) -> None:
        if not self.at_end():
            raise GrammarError("Extra data after command arguments")

    def chars(self, allowed: frozenset[int]) -> bytes:
        line = self._line()
        if line is None:
            raise GrammarError("Unexpected literal")
        start = self.pos
        while self.pos < len(line) and line[self.pos] in allowed:
            self.pos += 1
        if self.pos == start:
            raise GrammarError("Expected an atom")
        return line[start: self.pos]

    def literal(self) -> bytes:
        if not self.at_literal():
            raise GrammarError("Expected a literal")
        data = self.segs[self.i]
        self.i += 1
        self.pos = 0
        return bytes(data)

    # --- tokens -----------------------------------------------------------------------------
    def atom(self) -> str:
        return self.chars(_ATOM_CHARS).decode("ascii")

    def quoted(self) -> bytes:
        self.expect(b'"')
        line = self._line() or b""
        out = bytearray()
        while True:
            if self.pos >= len(line):
                raise GrammarError("Unterminated quoted string")
            c = line[self.pos]
            self.pos += 1
            if c == 0x22:
                return bytes(out)
            if c == 0x5C:
                if self.pos >= len(line) or line[self.pos] not in (0x22, 0x5C):
                    raise GrammarError("Bad escape in quoted string")
                c = line[self.pos]
                self.pos += 1
            elif c in (0, 0x0D, 0x0A):
                raise GrammarError("Bad character in quoted string")
            out.append(c)

    def string(self) -> bytes:
        if self.at_literal():
            return self.literal()
        if self.peek() == 0x22:
            return self.quoted()
        raise GrammarError("Expected a string")

    def astring(self) -> bytes:
        p = self.peek()
        if p == -2:
            return self.literal()
        if p == 0x22:
            return self.quoted()
        return self.chars(_ASTRING_CHARS)

    def astr(self) -> str:
        return self.astring().decode("utf-8", "replace")

    def list_mailbox(self) -> bytes:
        p = self.peek()
        if p == -2:
            return self.literal()
        if p == 0x22:
            return self.quoted()
        return self.chars(_LIST_CHARS)

    def nstring(self) -> bytes | None:
        if self.maybe(b"NIL") and not self._atom_continues():
            return None
        return self.string()

    def _atom_continues(self) -> bool:
        p = self.peek()
        return p >= 0 and p in _ATOM_CHARS

    def number(self, maximum: int = MAX_NUMBER) -> int:
        digits = self.chars(frozenset(b"0123456789"))
        if len(digits) > 20 or int(digits) > maximum:
            raise GrammarError("Number out of range")
        return int(digits)

    def nz_number(self) -> int:
        n = self.number()
        if n == 0:
            raise GrammarError("Zero is not a valid number here")
        return n

    def seq_number(self) -> int | None:
        if self.maybe(b"*"):
            return None
        return self.nz_number()

    def seq_set(self) -> SeqSet:
        ranges: list[SeqRange] = []
        while True:
            lo = self.seq_number()
            hi = self.seq_number() if self.maybe(b":") else lo
            ranges.append((lo, hi))
            if len(ranges) > 100_000:
                raise GrammarError("Sequence set too long")
            if not self.maybe(b","):
                return tuple(ranges)

    def paren(self, item: Callable[[], Any], allow_empty: bool = True) -> list[Any]:
        self.expect(b"(")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise GrammarError("Too deeply nested")
        out: list[Any] = []
        if self.maybe(b")"):
            if not allow_empty:
                raise GrammarError("Empty list")
            self.depth -= 1
            return out
        while True:
            out.append(item())
            if self.maybe(b")"):
                self.depth -= 1
                return out
            self.sp()

    def flag(self) -> str:
        if self.maybe(b"\\"):
            name = self.atom()
            canon = {"SEEN": "\\Seen", "ANSWERED": "\\Answered", "FLAGGED": "\\Flagged",
                     "DELETED": "\\Deleted", "DRAFT": "\\Draft", "RECENT": "\\Recent"}.get(name.upper())
            return canon or "\\" + name
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        return tuple(self.paren(self.flag))

    def date(self) -> float:
        """date = date-text / DQUOTE date-text DQUOTE → epoch of 00:00 UTC that day."""
        quoted = self.maybe(b'"')
        text = self.chars(frozenset(b"0123456789-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        if quoted:
            self.expect(b'"')
        m = re.fullmatch(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})", text)
        if not m or m.group(2).lower().decode() not in _MONTHS:
            raise GrammarError("Bad date")
        try:
            return float(calendar.timegm((int(m.group(3)), _MONTHS[m.group(2).lower().decode()],
                                          int(m.group(1)), 0, 0, 0, 0, 0, 0)))
        except (ValueError, OverflowError) as exc:
            raise GrammarError("Bad date") from exc

    def date_time(self) -> float:
        """RFC 3501 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" → epoch seconds."""
        raw = self.quoted()
        m = re.fullmatch(rb"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)", raw)
        if not m or m.group(2).lower().decode() not in _MONTHS:
            raise GrammarError("Bad date-time")
        day, year = int(m.group(1)), int(m.group(3))
        hh, mm, ss = int(m.group(4)), int(m.group(5)), int(m.group(6))
        if not (1 <= day <= 31 and hh < 24 and mm < 60 and ss < 61):
            raise GrammarError("Bad date-time")
        off = (int(m.group(8)) * 3600 + int(m.group(9)) * 60) * (1 if m.group(7) == b"+" else -1)
        t = calendar.timegm((year, _MONTHS[m.group(2).lower().decode()], day, hh, mm, ss, 0, 0, 0))
        return float(t - off)


# --- command argument grammars -------------------------------------------------------------

def _none(r: Reader) -> None:
    return None


def _login(r: Reader) -> tuple[bytes, bytes]:
    r.sp()
    user = r.astring()
    r.sp()
    return user, r.astring()


def _authenticate(r: Reader) -> tuple[str, bytes | None]:
    r.sp()
    mech = r.atom().upper()
    ir = None
    if r.maybe(b" "):
        ir = r.chars(frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="))
    return mech, ir


def _mailbox(r: Reader) -> bytes:
    r.sp()
    return r.astring()


def _select(r: Reader) -> SelectArgs:
    """RFC 4466 select parameters: CONDSTORE, QRESYNC (…) (RFC 7162); other names are kept
    for the handler to refuse."""
    name = _mailbox(r)
    params: list[str] = []
    qresync = None

    def param() -> str:
        nonlocal qresync
        p = r.atom().upper()
        if p == "QRESYNC":
            r.sp()
            qresync = _qresync(r)
        return p

    if r.maybe(b" "):
        params = r.paren(param, allow_empty=False)
    return SelectArgs(name, tuple(params), qresync)


def _qresync(r: Reader) -> QresyncArgs:
    r.expect(b"(")
    validity = r.nz_number()
    r.sp()
    modseq = r.number(MAX_NUMBER64)
    known = seq_match = None
    if r.maybe(b" "):
        if r.peek() != ord("("):
            known = r.seq_set()
        if known is None or r.maybe(b" "):
            r.expect(b"(")
            seqs = r.seq_set()
            r.sp()
            seq_match = (seqs, r.seq_set())
            r.expect(b")")
    r.expect(b")")
    return QresyncArgs(validity, modseq, known, seq_match)


def _create(r: Reader) -> bytes:
    name = _mailbox(r)
    if r.maybe(b" "):  # RFC 6154 CREATE-SPECIAL-USE parameters: accepted and ignored
        r.paren(lambda: _any_token(r))
    return name


def _any_token(r: Reader) -> Any:
    if r.peek() == ord("("):
        return r.paren(lambda: _any_token(r))
    if r.peek() in (0x22, -2):
        return r.string()
    return r.chars(_LIST_CHARS | {ord("\\")})


def _rename(r: Reader) -> tuple[bytes, bytes]:
    a = _mailbox(r)
    return a, _mailbox(r)


def _list(r: Reader) -> ListArgs:
    r.sp()
    select: list[str] = []
    extended = False
    if r.peek() == ord("("):
        select = [a.upper() for a in r.paren(r.atom)]
        extended = True
        r.sp()
    ref = r.list_mailbox() if r.peek() != ord('"') else r.quoted()
    r.sp()
    if r.peek() == ord("("):
        patterns = tuple(r.paren(r.list_mailbox, allow_empty=False))
        extended = True
    else:
        patterns = (r.list_mailbox(),)
    ret: list[str] = []
    status: tuple[str, ...] = ()
    if r.maybe(b" "):
        r.expect(b"RETURN ")
        extended = True

        def opt() -> str:
            name = r.atom().upper()
            nonlocal status
            if name == "STATUS":
                r.sp()
                status = tuple(a.upper() for a in r.paren(r.atom, allow_empty=False))
            return name

        ret = r.paren(opt)
    return ListArgs(ref, patterns, tuple(select), tuple(ret), status, extended)


def _lsub(r: Reader) -> ListArgs:
    r.sp()
    ref = r.list_mailbox()
    r.sp()
    return ListArgs(ref, (r.list_mailbox(),))


def _status(r: Reader) -> tuple[bytes, tuple[str, ...]]:
    name = _mailbox(r)
    r.sp()
    return name, tuple(a.upper() for a in r.paren(r.atom, allow_empty=False))


def _append(r: Reader) -> AppendArgs:
    name = _mailbox(r)
    r.sp()
    flags: tuple[str, ...] = ()
    date = None
    if r.peek() == ord("("):
        flags = r.flag_list()
        r.sp()
    if r.peek() == ord('"'):
        date = r.date_time()
        r.sp()
    return AppendArgs(name, flags, date, r.literal())


def _fetch(r: Reader) -> FetchArgs:
    r.sp()
    seqset = r.seq_set()
    r.sp()
    if r.peek() == ord("("):
        atts = tuple(a for group in r.paren(lambda: _fetch_att(r), allow_empty=False) for a in group)
    else:
        atts = _fetch_att(r, macros=True)
    changedsince = None
    vanished = False
    if r.maybe(b" "):  # fetch modifiers (RFC 4466 §2.4): CHANGEDSINCE, VANISHED (RFC 7162)

        def modifier() -> None:
            nonlocal changedsince, vanished
            name = r.atom().upper()
            if name == "CHANGEDSINCE" and changedsince is None:
                r.sp()
                changedsince = r.number(MAX_NUMBER64)
            elif name == "VANISHED" and not vanished:
                vanished = True
            else:
                raise GrammarError("Unknown FETCH modifier")

        r.paren(modifier, allow_empty=False)
    return FetchArgs(seqset, atts, changedsince, vanished)


_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SIMPLE_ATTS = {"ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
                "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ"}
_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")


def _fetch_att(r: Reader, macros: bool = False) -> tuple[FetchAtt, ...]:
    name = r.chars(_NAME_CHARS).decode().upper()
    if macros and name in _MACROS:
        return tuple(FetchAtt(n) for n in _MACROS[name])
    if name in ("BODY", "BODY.PEEK") and r.peek() == ord("["):
        section = _section(r)
        partial = None
        if r.maybe(b"<"):
            start = r.number()
            r.expect(b".")
            partial = (start, r.nz_number())
            r.expect(b">")
        return (FetchAtt("BODY[]", section, partial, peek=name == "BODY.PEEK"),)
    if name in _SIMPLE_ATTS:
        return (FetchAtt(name),)
    raise GrammarError("Unknown FETCH attribute")


def _section(r: Reader) -> Section:
    r.expect(b"[")
    part: list[int] = []
    text = ""
    fields: tuple[str, ...] = ()
    while r.peek() in b"0123456789":
        part.append(r.nz_number())
        if not r.maybe(b"."):
            break
    if r.peek() != ord("]"):
        if part and r.peek() != -1 and not (65 <= r.peek() <= 122):
            raise GrammarError("Bad section")
        text = r.chars(_NAME_CHARS).decode().upper()
        if text not in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"):
            raise GrammarError("Bad section")
        if text == "MIME" and not part:
            raise GrammarError("MIME needs a part number")
        if text.startswith("HEADER.FIELDS"):
            r.sp()
            fields = tuple(f.decode("ascii", "replace").upper()
                           for f in r.paren(r.astring, allow_empty=False))
    r.expect(b"]")
    return Section(tuple(part), text, fields)


def _store(r: Reader) -> StoreArgs:
    r.sp()
    seqset = r.seq_set()
    r.sp()
    unchanged = None
    if r.maybe(b"(UNCHANGEDSINCE "):
        unchanged = r.number(MAX_NUMBER64)
        r.expect(b") ")
    item = r.chars(_NAME_CHARS | {ord("+"), ord("-")}).decode().upper()
    m = re.fullmatch(r"([+-]?)FLAGS(\.SILENT)?", item)
    if not m:
        raise GrammarError("Bad STORE data item")
    mode = {"": "set", "+": "add", "-": "remove"}[m.group(1)]
    r.sp()
    if r.peek() == ord("("):
        flags = r.flag_list()
    else:
        items = [r.flag()]
        while r.maybe(b" "):
            items.append(r.flag())
        flags = tuple(items)
    return StoreArgs(seqset, mode, bool(m.group(2)), flags, unchanged)


def _copy(r: Reader) -> tuple[SeqSet, bytes]:
    r.sp()
    seqset = r.seq_set()
    return seqset, _mailbox(r)


def _uid_expunge(r: Reader) -> SeqSet:
    r.sp()
    return r.seq_set()


def _search(r: Reader) -> SearchArgs:
    from pymailsrv.imap.search import parse_search_keys

    r.sp()
    ret: tuple[str, ...] | None = None
    if r.maybe(b"RETURN "):
        ret = tuple(a.upper() for a in r.paren(r.atom))
        r.sp()
    charset = None
    if r.maybe(b"CHARSET "):
        charset = r.astr().upper()
        r.sp()
    return SearchArgs(parse_search_keys(r), charset, ret)


def _sort(r: Reader) -> SearchArgs:
    from pymailsrv.imap.search import parse_search_keys

    r.sp()
    crit = tuple(c.upper() for c in r.paren(r.atom, allow_empty=False))
    r.sp()
    charset = r.astr().upper()
    r.sp()
    return SearchArgs(parse_search_keys(r), charset, None, sort=crit)


def _thread(r: Reader) -> SearchArgs:
    from pymailsrv.imap.search import parse_search_keys

    r.sp()
    alg = r.atom().upper()
    r.sp()
    charset = r.astr().upper()
    r.sp()
    return SearchArgs(parse_search_keys(r), charset, None, algorithm=alg)


def _atom_arg(r: Reader) -> str:
    r.sp()
    return r.atom().upper()


def _enable(r: Reader) -> tuple[str, ...]:
    caps = []
    while r.maybe(b" "):
        caps.append(r.atom().upper())
    if not caps:
        raise GrammarError("ENABLE needs capability names")
    return tuple(caps)


def _id(r: Reader) -> dict[str, str | None] | None:
    r.sp()
    if r.maybe(b"NIL"):
        return None
    items = r.paren(lambda: r.nstring())
    if len(items) % 2 or len(items) > 60:
        raise GrammarError("Bad ID parameter list")
    return {(items[i] or b"").decode("utf-8", "replace"):
            (None if items[i + 1] is None else items[i + 1].decode("utf-8", "replace"))
            for i in range(0, len(items), 2)}


GRAMMAR: dict[str, Callable[[Reader], Any]] = {
    **{n: _none for n in ("CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "EXPUNGE",
                          "UNSELECT", "IDLE", "NAMESPACE")},
    "LOGIN": _login, "AUTHENTICATE": _authenticate,
    "SELECT": _select, "EXAMINE": _select, "CREATE": _create, "DELETE": _mailbox, "RENAME": _rename,
    "SUBSCRIBE": _mailbox, "UNSUBSCRIBE": _mailbox, "LIST": _list, "LSUB": _lsub, "STATUS": _status,
    "APPEND": _append, "SEARCH": _search, "FETCH": _fetch, "STORE": _store, "COPY": _copy,
    "MOVE": _copy, "SORT": _sort, "THREAD": _thread, "ENABLE": _enable, "ID": _id,
    "GETQUOTA": _mailbox, "GETQUOTAROOT": _mailbox, "COMPRESS": _atom_arg,
    "UID FETCH": _fetch, "UID STORE": _store, "UID COPY": _copy, "UID MOVE": _copy,
    "UID SEARCH": _search, "UID EXPUNGE": _uid_expunge, "UID SORT": _sort, "UID THREAD": _thread,
}


_CACHE: dict[bytes, Command] = {}
_CACHE_MAX = 1024
_CACHE_LINE_MAX = 512


def parse_command(segments: list[Segment]) -> Command | Any:
    """Tag, name and arguments of one complete command; a parser.Bad on any grammar error.

    Clients repeat the same literal-free commands (``UID FETCH 1:* (FLAGS)``, ``NOOP``), so the
    parsed form of a short line is remembered by its text after the tag (arguments are
    immutable, so sharing them is safe); FETCH, STORE, COPY and MOVE also by their text after
    the sequence set (``FETCH 17 (BODY.PEEK[])`` then ``FETCH 42 (BODY.PEEK[])``)."""
    line = segments[0] if len(segments) == 1 else b""
    if line and len(line) <= _CACHE_LINE_MAX:
        tag_b, sp, rest = line.partition(b" ")
        hit = _CACHE.get(rest) if sp else None
        if hit is None and sp:
            hit = _same_shape(rest)
        if hit is not None and _TAG_OK.fullmatch(tag_b):
            return Command(tag_b.decode("ascii"), hit.name, hit.args, hit.uid)
        result = _parse(segments)
        if isinstance(result, Command):
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.clear()
            _CACHE[rest] = result
            _remember_shape(rest, result)
        return result
    return _parse(segments)


# name, sequence set, the rest: the rest parses the same whatever the set (RFC 3501 §9)
_SEQ_FIRST = re.compile(rb"((?:UID )?(?:FETCH|STORE|COPY|MOVE)) ([0-9:,*]+) ", re.IGNORECASE)
_SHAPES: dict[bytes, Command] = {}


def _shape_of(rest: bytes) -> tuple[bytes, bytes] | None:
    m = _SEQ_FIRST.match(rest)
    if m is None:
        return None
    return m.group(1).upper() + b" " + rest[m.end():], m.group(2)


def _remember_shape(rest: bytes, cmd: Command) -> None:
    shape = _shape_of(rest)
    if shape is not None:
        if len(_SHAPES) >= _CACHE_MAX:
            _SHAPES.clear()
        _SHAPES[shape[0]] = cmd


def _same_shape(rest: bytes) -> Command | None:
    """A remembered command of the same shape with this line's sequence set, or None."""
    shape = _shape_of(rest)
    hit = _SHAPES.get(shape[0]) if shape is not None else None
    if hit is None or shape is None:
        return None
    r = Reader([shape[1]])
    try:
        seqset = r.seq_set()
        r.end()
    except GrammarError:
        return None  # the full parse reports it
    a = hit.args
    if isinstance(a, FetchArgs):
        args: Any = FetchArgs(seqset, a.atts, a.changedsince, a.vanished)
    elif isinstance(a, StoreArgs):
        args = StoreArgs(seqset, a.mode, a.silent, a.flags, a.unchangedsince)
    else:  # COPY, MOVE: (sequence set, mailbox)
        args = (seqset, *a[1:])
    return Command(hit.tag, hit.name, args, hit.uid)


_TAG_OK = re.compile(b"[" + b"".join(re.escape(bytes([c])) for c in sorted(_TAG_CHARS)) + b"]+")


def _parse(segments: list[Segment]) -> Command | Any:
    from pymailsrv.imap.parser import Bad

    r = Reader(segments)
    try:
        tag = r.chars(_TAG_CHARS).decode("ascii")
    except GrammarError:
        return Bad("*", "Error in IMAP command received by server")
    try:
        r.sp()
        name = r.atom().upper()
    except GrammarError:
        return Bad(tag, "Error in IMAP command received by server")
    uid = False
    if name == "UID":
        try:
            r.sp()
            name = "UID " + r.atom().upper()
        except GrammarError:
            return Bad(tag, "Error in IMAP command UID: Missing command")
        uid = True
    grammar = GRAMMAR.get(name)
    if grammar is None:
        return Command(tag, name, None, uid)
    try:
        args = grammar(r)
        r.end()
    except GrammarError as exc:
        return Bad(tag, f"Error in IMAP command {name}: {exc}")
    except RecursionError:
        return Bad(tag, f"Error in IMAP command {name}: Too deeply nested")
    return Command(tag, name, args, uid)
