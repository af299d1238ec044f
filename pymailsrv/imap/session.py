"""One IMAP session's state: login state, the selected mailbox's sequence view, output buffer.

Implementation notes:
- The session keeps its own sequence-number view (``uids``) on top of the store's Mailbox, so
  messages another session expunged keep their numbers until this session may be told:
  RFC 3501 §7.4.1 forbids EXPUNGE responses during FETCH, STORE and SEARCH (not their UID
  forms). Such messages sit in ``gone`` and are skipped by FETCH/SEARCH until announced.
- Responses are collected in ``out`` and written with one transport write per command (or per
  256 KiB during a big FETCH); nothing is written while a store call is in progress.
- Never write to the socket while holding a store lock: the store's calls return before we write.
- When the selected folder is deleted or renamed away by another session (the store raises
  MailboxGone), the session cannot go on in the selected state (its UIDs and sequence numbers
  belong to a folder that no longer has that name): ``mailbox_lost`` makes the server end it
  with ``* BYE`` after the current command, as Dovecot does.
- Once CONDSTORE is enabled (ENABLE or an enabling command, RFC 7162 §3.1) every FETCH response
  about flags carries UID and MODSEQ; once QRESYNC is, expunges are announced as VANISHED.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from pymailsrv.errors import ClientSyntaxError
from pymailsrv.imap import wire
from pymailsrv.imap.cache import ContentCache
from pymailsrv.imap.grammar import SeqSet
from pymailsrv.imap.parser import CommandParser
from pymailsrv.net import Connection
from pymailsrv.net.forward import Upstream
from pymailsrv.store.base import Mailbox, MailboxGone, MessageInfo
from pymailsrv.types import Account

NOT_AUTH = "not-authenticated"
AUTH = "authenticated"
SELECTED = "selected"
LOGOUT = "logout"
FLUSH_AT = 256 * 1024

PERMANENT_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


@dataclass(eq=False)
class Session:
    conn: Connection
    parser: CommandParser
    state: str = NOT_AUTH
    account: Account | None = None
    mailbox: Mailbox | None = None
    readonly: bool = False
    uids: list[int] = field(default_factory=list)
    info: dict[int, MessageInfo] = field(default_factory=dict)
    recent: set[int] = field(default_factory=set)
    gone: set[int] = field(default_factory=set)
    keywords: set[str] = field(default_factory=set)
    enabled: set[str] = field(default_factory=set)
    errors: int = 0
    client_id: dict[str, str | None] = field(default_factory=dict)
    out: list[bytes] = field(default_factory=list)
    out_size: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    uid_command: bool = False
    sid: str = ""
    dirty: bool = False  # this session wrote to the selected folder: the next sync must run
    mailbox_lost: bool = False  # the selected folder went away: BYE after this command
    last_sync: float = 0.0
    cache: ContentCache | None = None
    upstream: Upstream | None = None  # proxied: the backend the session is spliced to after login
    _seq: dict[int, int] | None = None

    # --- output ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self.out.append(data)
        self.out_size += len(data)

    def untagged(self, line: bytes | str) -> None:
        self.write(b"* " + (line.encode() if isinstance(line, str) else line) + b"\r\n")

    async def flush(self) -> None:
        if not self.out:
            return
        data = b"".join(self.out)
        self.out.clear()
        self.out_size = 0
        self.bytes_out += len(data)
        await self.conn.send(data)

    async def maybe_flush(self) -> None:
        if self.out_size >= FLUSH_AT:
            await self.flush()

    async def client_line(self) -> bytes:
        """One raw line from the client (SASL responses, IDLE's DONE), flushing output first."""
        await self.flush()
        while True:
            line = self.parser.read_line()
            if isinstance(line, bytes):
                return line
            if line is not None:
                raise ClientSyntaxError(line.text)
            data = await self.conn.read_some()
            self.bytes_in += len(data)
            self.parser.feed(data)

    # --- the selected mailbox -------------------------------------------------------------------
    def seq_of(self, uid: int) -> int:
        if self._seq is None:
            self._seq = {u: i for i, u in enumerate(self.uids, 1)}
        return self._seq[uid]

    def seqs(self, uids: list[int]) -> list[int]:
        """``seq_of`` of each (every one in the view)."""
        if self._seq is None:
            self._seq = {u: i for i, u in enumerate(self.uids, 1)}
        return list(map(self._seq.__getitem__, uids))

    def load_view(self, mailbox: Mailbox, recent: frozenset[int]) -> None:
        self.mailbox = mailbox
        msgs = mailbox.messages()
        self.uids = [m.uid for m in msgs]
        self.info = {m.uid: m for m in msgs}
        self.recent = set(recent) & self.info.keys()
        self.gone = set()
        self._seq = None
        self.keywords = {f for flags in {m.flags for m in msgs} for f in flags if not f.startswith("\\")}

    async def close_mailbox(self) -> None:
        if self.mailbox is not None:
            mb, self.mailbox = self.mailbox, None
            await mb.close()
        self.uids, self.info, self.recent, self.gone = [], {}, set(), set()
        self._seq = None
        self.state = AUTH if self.state == SELECTED else self.state

    def flags_response(self, uid: int, with_uid: bool) -> bytes:
        info = self.info[uid]
        flags = sorted(info.flags)
        if uid in self.recent:
            flags.append("\\Recent")
        items = b"FLAGS " + wire.flag_list(flags)
        condstore = "CONDSTORE" in self.enabled
        if with_uid or condstore:
            items = b"UID %d " % uid + items
        if condstore:
            items += b" MODSEQ (%d)" % info.modseq
        return b"%d FETCH (%s)" % (self.seq_of(uid), items)

    def enable_condstore(self) -> None:
        """A CONDSTORE enabling command ran (RFC 7162 §3.1): a selected mailbox reports its
        HIGHESTMODSEQ once, and FETCH responses carry MODSEQ from now on."""
        if "CONDSTORE" in self.enabled:
            return
        self.enabled.add("CONDSTORE")
        if self.mailbox is not None:
            self.mailbox.want_modseqs()
            self.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % self.mailbox.highestmodseq)

    def note_keywords(self, flags: frozenset[str] | set[str]) -> bool:
        new = {f for f in flags if not f.startswith("\\")} - self.keywords
        self.keywords |= new
        return bool(new)

    def take(self, infos: list[MessageInfo], also: frozenset[str] | set[str] = frozenset()) -> list[MessageInfo]:
        """A write's results (the messages' flags now) into the view. They may hold keywords
        another session set meanwhile, which this one was not told of yet: a FLAGS response
        announces them first (RFC 3501 §7.2.6; imaptest: "Keyword used without being in FLAGS").
        ``also``: flags the write set (new keywords are announced even if no message changed).
        Returns the messages still in the view."""
        taken = [m for m in infos if m.uid in self.info]
        new = self.note_keywords(also)
        for m in taken:
            self.info[m.uid] = m
            new |= self.note_keywords(m.flags)
        if new:
            self.flags_untagged()
        return taken

    def flags_untagged(self) -> None:
        flags = list(PERMANENT_FLAGS) + sorted(self.keywords)
        self.untagged(b"FLAGS " + wire.flag_list(flags))
        perm = ([*flags, "\\*"]) if not self.readonly else []
        self.untagged(b"OK [PERMANENTFLAGS " + wire.flag_list(perm) + b"] Flags permitted.")

    async def sync(self, allow_expunge: bool, *, force: bool = True, now: float = 0.0,
                   max_age: float = 1.0) -> None:
        """Pick up other sessions' and deliveries' changes and queue the untagged responses.
        Unless ``force``, the store's change notice decides, with a full sync at least every
        ``max_age`` seconds (changes made by other processes)."""
        if self.mailbox is None or self.mailbox_lost:
            return
        lazy = not (force or self.dirty or now - self.last_sync >= max_age)
        if lazy and not await self.mailbox.wait_for_change(0):
            if allow_expunge and self.gone:
                self.announce_expunges()
            return
        self.dirty = False
        self.last_sync = now
        try:
            res = await self.mailbox.sync()
        except MailboxGone:
            self.mailbox_lost = True
            return
        self.gone.update(u for u in res.expunged if u in self.info)
        if allow_expunge:
            self.announce_expunges()
        keyword_change = False
        for m in res.flags_changed:
            if m.uid in self.info and m.uid not in self.gone:
                self.info[m.uid] = m
                keyword_change |= self.note_keywords(m.flags)
        if res.added:
            before = len(self.uids)
            for m in res.added:
                if m.uid not in self.info:
                    self.uids.append(m.uid)
                    self.info[m.uid] = m
                    if self._seq is not None:  # appended: the numbers before it stand
                        self._seq[m.uid] = len(self.uids)
                    keyword_change |= self.note_keywords(m.flags)
            self.recent |= set(res.recent)
            if keyword_change:
                self.flags_untagged()
            if len(self.uids) != before:
                self.untagged(b"%d EXISTS" % len(self.uids))
                self.untagged(b"%d RECENT" % len(self.recent))
        elif keyword_change:
            self.flags_untagged()
        for m in res.flags_changed:
            if m.uid in self.info and m.uid not in self.gone:
                self.untagged(self.flags_response(m.uid, self.uid_command))

    def announce_expunges(self) -> None:
        """Send EXPUNGE for every message known gone and drop it from the view."""
        if not self.gone:
            return
        gone = self.gone
        self.gone = set()
        self.forget(sorted(gone))

    def forget(self, uids: list[int]) -> None:
        """Drop expunged UIDs (ascending) from the view, sending one EXPUNGE each (highest first
        keeps the remaining numbers valid), or one VANISHED once QRESYNC is enabled (RFC 7162
        §3.2.10)."""
        positions = []
        for uid in uids:
            i = bisect.bisect_left(self.uids, uid)
            if i < len(self.uids) and self.uids[i] == uid:
                positions.append(i)
        vanished = "QRESYNC" in self.enabled
        if vanished and positions:
            self.untagged("VANISHED " + wire.seq_set(self.uids[i] for i in positions))
        for i in reversed(positions):
            uid = self.uids.pop(i)
            self.info.pop(uid, None)
            self.recent.discard(uid)
            if not vanished:
                self.untagged(b"%d EXPUNGE" % (i + 1))
        if positions:
            self._seq = None

    def resolve(self, seqset: SeqSet, uid: bool) -> list[int]:
        """UIDs (ascending, deduplicated) named by a sequence set in this session's view.
        Sequence numbers beyond the view are a client error (RFC 3501 §9 seq-number)."""
        if uid:
            return self._resolve_uids(seqset)
        n = len(self.uids)
        picked: set[int] = set()
        for lo, hi in seqset:
            a = n if lo is None else lo
            b = n if hi is None else hi
            if a > b:
                a, b = b, a
            if a < 1 or b > n:
                raise ClientSyntaxError(wire.BAD_SEQSET)
            if b - a > n:
                b = a + n
            if len(seqset) == 1:  # the usual "1:*" or "n": already ascending, no duplicates
                return self.uids[a - 1 : b]
            picked.update(range(a, b + 1))
        return [self.uids[i - 1] for i in sorted(picked)]

    def _resolve_uids(self, seqset: SeqSet) -> list[int]:
        if not self.uids:
            return []
        top = self.uids[-1]
        out: set[int] = set()
        for lo, hi in seqset:
            a = top if lo is None else lo
            b = top if hi is None else hi
            if a > b:
                a, b = b, a
            i = bisect.bisect_left(self.uids, a)
            j = bisect.bisect_right(self.uids, b)
            if len(seqset) == 1:
                return self.uids[i:j]
            out.update(self.uids[i:j])
        return sorted(out)
