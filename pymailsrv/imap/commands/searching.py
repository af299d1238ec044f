"""SEARCH (RFC 3501 §6.4.4, RFC 4731 ESEARCH, RFC 7162 MODSEQ), SORT and THREAD (RFC 5256).

Implementation notes:
- Keys on flags, UIDs, sizes and dates never read messages; header keys use the cached header
  block; only BODY/TEXT read whole files.
- Only UTF-8 and US-ASCII charsets are accepted (``NO [BADCHARSET]`` otherwise).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.imap import addresses, mime, threads, wire
from pymailsrv.imap.commands.base import Done
from pymailsrv.imap.commands.fetch import Loaded
from pymailsrv.imap.grammar import Command, SearchArgs
from pymailsrv.imap.search import SearchKey, matches, needs_content
from pymailsrv.store.base import MessageInfo

if TYPE_CHECKING:
    from pymailsrv.imap.session import Session

CHARSETS = ("UTF-8", "US-ASCII")
SORT_KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO")


class Cand:
    """A message as the search evaluator sees it (search.Candidate)."""

    __slots__ = ("_text", "flags", "internal_date", "modseq", "recent", "root", "seq", "size", "uid")

    def __init__(self, seq: int, info: MessageInfo, recent: bool, root: mime.Part | None) -> None:
        self.seq = seq
        self.uid = info.uid
        self.flags = info.flags
        self.recent = recent
        self.size = info.size
        self.internal_date = info.internal_date
        self.modseq = info.modseq
        self.root = root
        self._text: str | None = None

    def header(self, name: str) -> list[str]:
        assert self.root is not None
        return [mime.decode_header_value(v) for v in self.root.get_all(name.lower().encode("ascii", "replace"))]

    def addresses(self, name: str) -> list[str]:
        assert self.root is not None
        return [mime.address_text(v) for v in self.root.get_all(name.lower().encode("ascii", "replace"))]

    def sent_date(self) -> float | None:
        return mime.sent_date(self.root) if self.root is not None else None

    def sent_day(self) -> float | None:
        return mime.sent_day(self.root) if self.root is not None else None

    def body_text(self) -> str:
        if self._text is None:
            self._text = mime.body_text(self.root) if self.root is not None else ""
        return self._text

    def all_headers_text(self) -> str:
        return mime.headers_text(self.root) if self.root is not None else ""


def _needs_body(key: SearchKey) -> bool:
    return key.op in ("BODY", "TEXT") or any(_needs_body(c) for c in key.children)


async def _candidates(s: Session, key: SearchKey | None, want_headers: bool) -> list[Cand]:
    assert s.mailbox is not None
    content = want_headers or (key is not None and needs_content(key))
    body = key is not None and _needs_body(key)
    out = []
    for seq, uid in enumerate(s.uids, 1):
        if uid in s.gone:
            continue
        root = None
        if content:
            msg = Loaded(s.mailbox, uid, s.cache, s.account.username if s.account else "")
            try:
                root = await msg.root() if body else mime.parse(await msg.header())
            except KeyError:
                continue
        out.append(Cand(seq, s.info[uid], uid in s.recent, root))
    return out


def _check_charset(a: SearchArgs) -> None:
    if a.charset is not None and a.charset not in CHARSETS:
        raise Refusal("Unsupported charset", code="BADCHARSET (UTF-8 US-ASCII)")


async def _matching(s: Session, a: SearchArgs, want_headers: bool = False) -> list[Cand]:
    _check_charset(a)
    max_seq = len(s.uids)
    max_uid = s.uids[-1] if s.uids else 0
    return [c for c in await _candidates(s, a.key, want_headers) if matches(a.key, c, max_seq, max_uid)]


_FLAG_OPS = frozenset({"AND", "OR", "NOT", "ALL", "FLAG", "NOFLAG", "NEW", "OLD", "RECENT"})


def _on_flags_only(key: SearchKey) -> bool:
    """Whether the verdict depends on nothing but a message's flags and \\Recent."""
    return key.op in _FLAG_OPS and all(_on_flags_only(c) for c in key.children)


async def _hits(s: Session, a: SearchArgs) -> list[tuple[int, MessageInfo]]:
    """(sequence number, info) of the matching messages, ascending. A key on flags only (UNSEEN,
    DELETED, ...) is evaluated once per distinct flag set, not once per message."""
    if not _on_flags_only(a.key):
        return [(c.seq, s.info[c.uid]) for c in await _matching(s, a)]
    _check_charset(a)
    verdicts: tuple[dict[frozenset[str], bool], dict[frozenset[str], bool]] = ({}, {})  # [recent]
    out = []
    info, recent, gone = s.info, s.recent, s.gone
    for seq, uid in enumerate(s.uids, 1):
        if uid in gone:
            continue
        m = info[uid]
        is_recent = uid in recent
        known = verdicts[is_recent]
        hit = known.get(m.flags)
        if hit is None:
            hit = known[m.flags] = matches(a.key, Cand(seq, m, is_recent, None), 0, 0)
        if hit:
            out.append((seq, m))
    return out


def _uses_modseq(key: SearchKey) -> bool:
    return key.op == "MODSEQ" or any(_uses_modseq(c) for c in key.children)


async def search(srv: object, s: Session, cmd: Command) -> Done:
    a: SearchArgs = cmd.args
    hits = await _hits(s, a)
    nums = [m.uid for _, m in hits] if cmd.uid else [seq for seq, _ in hits]
    modseq = _uses_modseq(a.key)
    if modseq:
        s.enable_condstore()  # RFC 7162 §3.1
    if a.ret is None:
        line = "SEARCH" + "".join(f" {n}" for n in nums)
        if modseq and hits:
            line += f" (MODSEQ {max(m.modseq for _, m in hits)})"
        s.untagged(line)
        return Done("Search completed.")
    ret = set(a.ret) or {"ALL"}
    unknown = ret - {"MIN", "MAX", "COUNT", "ALL", "SAVE"}
    if unknown:
        raise ClientSyntaxError("Unknown RETURN option " + sorted(unknown)[0])
    parts = [f'ESEARCH (TAG "{cmd.tag}")'] + (["UID"] if cmd.uid else [])
    if nums and "MIN" in ret:
        parts.append(f"MIN {min(nums)}")
    if nums and "MAX" in ret:
        parts.append(f"MAX {max(nums)}")
    if "COUNT" in ret:
        parts.append(f"COUNT {len(nums)}")
    if nums and "ALL" in ret:
        parts.append("ALL " + wire.seq_set(nums))
    top = _returned_modseq(hits, ret) if modseq else 0
    if top:
        parts.append(f"MODSEQ {top}")
    s.untagged(" ".join(parts))
    return Done("Search completed.")


def _returned_modseq(hits: list[tuple[int, MessageInfo]], ret: set[str]) -> int:
    """RFC 7162 §3.1.5 with RFC 4731: the highest modseq of the messages the ESEARCH response
    returns — all matches for ALL or COUNT, else only those MIN and MAX name."""
    if ret & {"ALL", "COUNT"}:
        shown = hits
    else:
        shown = ([hits[0]] if "MIN" in ret else []) + ([hits[-1]] if "MAX" in ret else [])
    return max((m.modseq for _, m in shown), default=0)


def _first_mailbox(c: Cand, field: str) -> str:
    assert c.root is not None
    value = c.root.get(field.lower().encode())
    if value is None:
        return ""
    for _name, _route, mbox, _host in addresses.parse(value.replace(b"\r\n", b"")):
        if mbox:  # a group's name too, as its envelope structure reads (as Dovecot sorts)
            return mbox.decode("utf-8", "replace").upper()  # i;ascii-casemap (RFC 5256 §3)
    return ""


def _sort_value(c: Cand, key: str) -> Any:
    if key == "ARRIVAL":
        return c.internal_date
    if key == "SIZE":
        return c.size
    if key == "DATE":
        sent = c.sent_date()
        return sent if sent is not None else c.internal_date
    if key == "SUBJECT":
        subj = c.header("Subject")
        return threads.base_subject(subj[0])[0] if subj else ""
    return _first_mailbox(c, key)


async def sort(srv: object, s: Session, cmd: Command) -> Done:
    a: SearchArgs = cmd.args
    crit: list[tuple[str, bool]] = []
    reverse = False
    for word in a.sort:
        if word == "REVERSE":
            reverse = True
            continue
        if word not in SORT_KEYS:
            raise ClientSyntaxError("Unknown sort criterion " + word)
        crit.append((word, reverse))
        reverse = False
    if reverse or not crit:
        raise ClientSyntaxError("Invalid sort criteria")
    hits = await _matching(s, a, want_headers=any(k not in ("ARRIVAL", "SIZE") for k, _ in crit))
    hits.sort(key=lambda c: c.seq)  # RFC 5256: ties keep sequence order
    for key, rev in reversed(crit):
        hits.sort(key=functools.partial(_sort_value, key=key), reverse=rev)
    s.untagged("SORT" + "".join(f" {c.uid if cmd.uid else c.seq}" for c in hits))
    return Done("Sort completed.")


async def thread(srv: object, s: Session, cmd: Command) -> Done:
    a: SearchArgs = cmd.args
    if a.algorithm not in ("REFERENCES", "ORDEREDSUBJECT"):
        raise ClientSyntaxError("Unknown thread algorithm")
    hits = await _matching(s, a, want_headers=True)
    msgs = []
    for c in hits:
        subj = c.header("Subject")
        base, reply = threads.base_subject(subj[0]) if subj else ("", False)
        mid = threads.message_ids(_raw(c, "message-id"))
        refs = threads.message_ids(_raw(c, "references")) or threads.message_ids(_raw(c, "in-reply-to"))[:1]
        sent = c.sent_date()
        msgs.append(threads.ThreadMsg(c.uid if cmd.uid else c.seq, sent if sent is not None else c.internal_date,
                                      base, mid[0] if mid else "", refs, reply))
    fn = threads.references if a.algorithm == "REFERENCES" else threads.ordered_subject
    s.untagged("THREAD " + fn(msgs) if msgs else "THREAD")
    return Done("Thread completed.")


def _raw(c: Cand, name: str) -> str | None:
    assert c.root is not None
    v = c.root.get(name.encode())
    return v.decode("utf-8", "replace") if v is not None else None

