"""FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2; RFC 7162 CHANGEDSINCE/MODSEQ, VANISHED).

Implementation notes:
- FLAGS, UID, INTERNALDATE, RFC822.SIZE and MODSEQ come from the session's MessageInfo: the
  message file is never read for them.
- ENVELOPE, BODYSTRUCTURE, BODY and the top-level header block are cached per message through
  ``Mailbox.cache_get/cache_put``, so a client listing (ENVELOPE or HEADER.FIELDS) reads each file
  at most once for the life of the folder index.
- Messages this session must not yet hear were expunged (``Session.gone``) are skipped; RFC 3501
  §7.4.1 forbids sending EXPUNGE here.
- Non-peek body sections set \\Seen first (one store call for the whole set) and report FLAGS.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from pymailsrv.imap import mime, wire
from pymailsrv.imap.cache import ContentCache, Key
from pymailsrv.imap.commands import resync
from pymailsrv.imap.commands.base import Done, need
from pymailsrv.imap.grammar import Command, FetchArgs, FetchAtt, Section
from pymailsrv.message.lines import to_crlf
from pymailsrv.store.base import SEEN, Mailbox, MessageInfo

if TYPE_CHECKING:
    from pymailsrv.imap.session import Session

# Bump the version when mime.py's output changes: the store's cache outlives the process.
_V = "2"
CACHE_KEYS = {"ENVELOPE": f"imap.envelope.{_V}", "BODYSTRUCTURE": f"imap.bodystructure.{_V}",
              "BODY": f"imap.body.{_V}"}
HEADER_KEY = "imap.header"
_PREFETCH = 8


class Loaded:
    """One message's content, read and parsed at most once per FETCH; derived data goes
    through the server-wide ContentCache, then the store's per-message cache."""

    def __init__(self, mailbox: Mailbox, uid: int, cache: ContentCache | None = None, user: str = "",
                 pending: asyncio.Task[bytes] | None = None) -> None:
        self.mailbox = mailbox
        self.uid = uid
        self.cache = cache
        self.user = user
        self.pending = pending  # a read already started by the prefetcher
        self._data: bytes | None = None
        self._root: mime.Part | None = None
        self._header: bytes | None = None

    async def data(self) -> bytes:
        if self._data is None:
            raw = await self.pending if self.pending is not None else await self.mailbox.read(self.uid)
            self._data = to_crlf(raw)
        return self._data

    @property
    def parsed(self) -> mime.Part | None:
        return self._root

    async def root(self) -> mime.Part:
        if self._root is None:
            self._root = mime.parse(await self.data())
        return self._root

    def _key(self, what: str) -> Key:
        return (self.user, self.mailbox.folder, self.mailbox.uidvalidity, self.uid, what)

    async def cached(self, what: str) -> bytes | None:
        if self.cache is not None:
            got = self.cache.get(self._key(what))
            if got is not None:
                return got
        got = await self.mailbox.cache_get(self.uid, what)
        if got is not None and self.cache is not None:
            self.cache.put(self._key(what), got)
        return got

    async def remember(self, what: str, value: bytes) -> None:
        if self.cache is not None:
            self.cache.put(self._key(what), value)
        await self.mailbox.cache_put(self.uid, what, value)

    async def header(self) -> bytes:
        if self._header is None:
            if self._data is None:
                cached = await self.cached(HEADER_KEY)
                if cached is not None:
                    self._header = cached
                    return cached
            self._header = mime.split_message(await self.data())[0]
            await self.remember(HEADER_KEY, self._header)
        return self._header

    async def header_fields(self, sec: Section, spec: str) -> bytes:
        """HEADER.FIELDS (.NOT) of the top-level header (``spec`` is ``sec.spec()``); kept in the
        ContentCache only (clients list the same few fields again and again; the store's cache
        has the header itself)."""
        key = self._key("fields " + spec)
        got = self.cache.get(key) if self.cache is not None else None
        if got is None:
            got = mime.header_fields(await self.header(), sec.fields, sec.text.endswith(".NOT"))
            if self.cache is not None:
                self.cache.put(key, got)
        return got

    async def structure(self, name: str) -> bytes:
        key = CACHE_KEYS[name]
        cached = await self.cached(key)
        if cached is not None:
            return cached
        root = await self.root()
        value = _derive(root, name)
        await self.remember(key, value)
        if self.cache is not None:
            # The other items (and the header) cost little more now than another read and parse
            # later: clients that ask one ask the others (imaptest's FETCH, mutt, iOS Mail).
            # The process-wide cache only; the store's keeps what was asked for.
            for other, other_key in CACHE_KEYS.items():
                if other != name and self.cache.get(self._key(other_key)) is None:
                    self.cache.put(self._key(other_key), _derive(root, other))
            if self._header is None:
                self._header = root.header
                self.cache.put(self._key(HEADER_KEY), root.header)
        return value


def _derive(root: mime.Part, name: str) -> bytes:
    if name == "ENVELOPE":
        return mime.envelope(root)
    return mime.bodystructure(root, extended=name == "BODYSTRUCTURE")


def _sets_seen(att: FetchAtt) -> bool:
    return att.name in ("RFC822", "RFC822.TEXT") or (att.name == "BODY[]" and not att.peek)


async def _section_bytes(msg: Loaded, sec: Section, spec: str) -> bytes | None:
    if not sec.part and sec.text == "HEADER":
        return await msg.header()
    if not sec.part and sec.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return await msg.header_fields(sec, spec)
    if msg.parsed is None:  # the whole message, its text, or part 1 of a single part: no MIME parse
        if not sec.part and sec.text in ("", "TEXT"):
            data = await msg.data()
            return data if not sec.text else mime.split_message(data)[1]
        if sec.part == (1,) and not sec.text:
            body = mime.single_part_body(await msg.data())
            if body is not None:
                return body
    return mime.section(await msg.root(), await msg.data(), sec)


_INFO_ATTS = frozenset({"FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"})
_flag_lists: tuple[dict[frozenset[str], bytes], dict[frozenset[str], bytes]] = ({}, {})  # [recent]


def _flag_list(flags: frozenset[str], recent: bool) -> bytes:
    """``(\\Seen ...)``, remembered per flag set (a folder has few distinct ones)."""
    known = _flag_lists[recent]
    got = known.get(flags)
    if got is None:
        if len(known) > 4096:
            known.clear()
        got = known[flags] = wire.flag_list(sorted(flags) + (["\\Recent"] if recent else []))
    return got


def _info_item(s: Session, info: MessageInfo, name: str) -> bytes:
    """Items answered from the MessageInfo alone (no file access)."""
    if name == "FLAGS":
        return b"FLAGS " + _flag_list(info.flags, info.uid in s.recent)
    if name == "UID":
        return b"UID %d" % info.uid
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + wire.internal_date(info.internal_date)
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % info.size
    return b"MODSEQ (%d)" % info.modseq


_TEMPLATE = {"FLAGS": b"FLAGS %s", "UID": b"UID %d", "INTERNALDATE": b"INTERNALDATE %s",
             "RFC822.SIZE": b"RFC822.SIZE %d", "MODSEQ": b"MODSEQ (%d)"}


def _info_column(s: Session, ms: list[MessageInfo], name: str) -> list[object]:
    if name == "UID":
        return [m.uid for m in ms]
    if name == "FLAGS":
        recent = s.recent
        plain = _flag_lists[False]  # looked up inline: a call per message costs as much again
        return [_flag_list(m.flags, True) if m.uid in recent else plain.get(m.flags) or _flag_list(m.flags, False)
                for m in ms]
    if name == "RFC822.SIZE":
        return [m.size for m in ms]
    if name == "MODSEQ":
        return [m.modseq for m in ms]
    return [wire.internal_date(m.internal_date) for m in ms]


def _info_lines(s: Session, uids: list[int], names: list[str]) -> bytes:
    """Untagged FETCH lines for info-only items (the hot path of clients that list a whole
    folder's flags right after SELECT): one template per command, filled column by column
    (a comprehension per item costs less than a branch per item and message)."""
    template = b"* %d FETCH (" + b" ".join(_TEMPLATE[n] for n in names) + b")\r\n"
    ms = [m for m in map(s.info.get, uids) if m is not None]
    columns = [s.seqs([m.uid for m in ms]), *(_info_column(s, ms, n) for n in names)]
    return b"".join(map(template.__mod__, zip(*columns, strict=True)))


class _Planned:
    """A FETCH item with its section text and response label, computed once per command."""

    __slots__ = ("att", "cache_what", "label", "literal", "prefix", "spec")

    def __init__(self, att: FetchAtt) -> None:
        self.att = att
        self.spec = att.section.spec() if att.section is not None else ""
        label = b"BODY[" + self.spec.encode() + b"]"
        if att.partial is not None:
            label += b"<%d>" % att.partial[0]
        self.label = label + b" "
        # what the ContentCache holds the whole answer under, and what precedes it
        self.cache_what = ""
        self.prefix = b""
        self.literal = False  # the cached bytes go out as a literal
        sec = att.section
        if att.name in CACHE_KEYS:
            self.cache_what, self.prefix = CACHE_KEYS[att.name], att.name.encode() + b" "
        elif (sec is not None and not sec.part and sec.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT")
              and att.partial is None):
            self.cache_what, self.prefix, self.literal = "fields " + self.spec, self.label, True


def _ready_item(s: Session, info: MessageInfo, msg_key: tuple[str, str, int, int], item: _Planned) -> bytes | None:
    """The item without I/O or an await, when the MessageInfo or the ContentCache has it
    (``msg_key``: the message's part of the cache key); None otherwise."""
    name = item.att.name
    if name in _INFO_ATTS:
        return _info_item(s, info, name)
    if not item.cache_what or s.cache is None:
        return None
    got = s.cache.get((*msg_key, item.cache_what))
    if got is None:
        return None
    return item.prefix + (wire.literal(got) if item.literal else got)


async def _item(s: Session, info: MessageInfo, msg: Loaded, item: _Planned) -> bytes:
    att = item.att
    name = att.name
    if name in _INFO_ATTS:
        return _info_item(s, info, name)
    if name in CACHE_KEYS:
        return name.encode() + b" " + await msg.structure(name)
    if name == "RFC822":
        return b"RFC822 " + wire.literal(await msg.data())
    if name == "RFC822.HEADER":
        return b"RFC822.HEADER " + wire.literal(await msg.header())
    if name == "RFC822.TEXT":
        return b"RFC822.TEXT " + wire.literal(mime.split_message(await msg.data())[1])
    assert att.section is not None
    data = await _section_bytes(msg, att.section, item.spec)
    if att.partial is not None and data is not None:
        start, length = att.partial
        data = data[start: start + length]
    return item.label + wire.literal(data if data is not None else b"")  # absent part: empty


async def fetch(srv: object, s: Session, cmd: Command) -> Done:
    a: FetchArgs = cmd.args
    assert s.mailbox is not None
    user = s.account.username if s.account else ""
    uids = s.resolve(a.seqset, cmd.uid)
    if s.gone:
        uids = [u for u in uids if u not in s.gone]
    atts = list(a.atts)
    if (cmd.uid or "QRESYNC" in s.enabled) and not any(x.name == "UID" for x in atts):
        atts.insert(0, FetchAtt("UID"))  # with QRESYNC every FETCH names its message by UID
    if a.changedsince is not None or a.vanished or any(x.name == "MODSEQ" for x in atts):
        uids = await _condstore(s, cmd, uids, atts)
    seen_changed: set[int] = set()
    if not s.readonly and any(_sets_seen(x) for x in atts):
        unseen = [u for u in uids if SEEN not in s.info[u].flags]
        if unseen:
            seen_changed.update(m.uid for m in s.take(await s.mailbox.set_flags(unseen, [SEEN], "add")))
    if all(x.name in _INFO_ATTS for x in atts):
        s.write(_info_lines(s, uids, [x.name for x in atts]))
        return Done("Fetch completed.")
    reads = _Prefetch(s.mailbox, uids) if len(uids) > 1 and any(_needs_file(x) for x in atts) else None
    plan = [_Planned(att) for att in atts]
    folder, validity = s.mailbox.folder, s.mailbox.uidvalidity
    try:
        for uid in uids:
            cur = s.info.get(uid)
            if cur is None:
                continue
            info = cur
            ready = None
            if reads is None:  # answered from memory, no coroutine per item (clients' listings)
                msg_key = (user, folder, validity, uid)
                ready = [_ready_item(s, info, msg_key, item) for item in plan]
            if ready is None or None in ready:
                msg = Loaded(s.mailbox, uid, s.cache, user, reads.start(uid) if reads else None)
                try:
                    items = [got if ready is not None and (got := ready[i]) is not None
                             else await _item(s, info, msg, item) for i, item in enumerate(plan)]
                except KeyError:
                    continue  # the file vanished under us: expunged by another session
            else:
                items = cast("list[bytes]", ready)
            if uid in seen_changed:
                items += _seen_items(s, info, atts)
            s.write(b"* %d FETCH (" % s.seq_of(uid) + b" ".join(items) + b")\r\n")
            await s.maybe_flush()
    finally:
        if reads is not None:
            reads.cancel()
    return Done("Fetch completed.")


async def _condstore(s: Session, cmd: Command, uids: list[int], atts: list[FetchAtt]) -> list[int]:
    """RFC 7162: MODSEQ and CHANGEDSINCE enable CONDSTORE; CHANGEDSINCE keeps the messages
    changed since and adds MODSEQ; VANISHED first reports what was expunged since (§3.2.6)."""
    a: FetchArgs = cmd.args
    assert s.mailbox is not None
    s.enable_condstore()
    if a.vanished:
        need(cmd.uid and a.changedsince is not None and "QRESYNC" in s.enabled,
             "VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC")
    if a.changedsince is None:
        return uids
    if a.vanished:
        await resync.report_vanished(s, a.changedsince, resync.uid_ranges(a.seqset, s.mailbox.uidnext - 1))
    if not any(x.name == "MODSEQ" for x in atts):
        atts.append(FetchAtt("MODSEQ"))
    return [u for u in uids if s.info[u].modseq > a.changedsince]


def _seen_items(s: Session, info: MessageInfo, atts: list[FetchAtt]) -> list[bytes]:
    """What a FETCH that set \\Seen reports besides the items asked for: FLAGS, and with
    CONDSTORE the UID and MODSEQ (RFC 7162 §3.1)."""
    wanted = ("FLAGS", "UID", "MODSEQ") if "CONDSTORE" in s.enabled else ("FLAGS",)
    asked = {x.name for x in atts}
    return [_info_item(s, info, name) for name in wanted if name not in asked]


def _needs_file(att: FetchAtt) -> bool:
    """True when the item needs the whole message (not just cached header/structure data)."""
    if att.name in ("RFC822", "RFC822.TEXT"):
        return True
    sec = att.section
    return att.name == "BODY[]" and sec is not None and (bool(sec.part) or sec.text in ("", "TEXT"))


class _Prefetch:
    """Reads of the next few messages run concurrently (the store reads in threads), so a
    FETCH of many bodies is not one thread round trip after another."""

    WINDOW = 8

    def __init__(self, mailbox: Mailbox, uids: list[int]) -> None:
        self.mailbox = mailbox
        self.uids = uids
        self.pos = {u: i for i, u in enumerate(uids)}
        self.tasks: dict[int, asyncio.Task[bytes]] = {}

    def start(self, uid: int) -> asyncio.Task[bytes]:
        i = self.pos[uid]
        for u in self.uids[i: i + self.WINDOW]:
            if u not in self.tasks:
                self.tasks[u] = asyncio.ensure_future(self.mailbox.read(u))
        task = self.tasks.pop(uid)
        return task

    def cancel(self) -> None:
        for t in self.tasks.values():
            if t.done():
                if not t.cancelled():
                    t.exception()  # retrieved: a vanished file is not an error here
            else:
                t.cancel()
        self.tasks.clear()
