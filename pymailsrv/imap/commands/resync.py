"""QRESYNC (RFC 7162 §3.2): what a client that was away has missed, for SELECT/EXAMINE with
``(QRESYNC (uidvalidity modseq [known-uids [seq-match]]))`` and ``UID FETCH … (CHANGEDSINCE n
VANISHED)``: ``VANISHED (EARLIER)`` with the UIDs expunged since its modseq, then a FETCH for each
message changed since.

Implementation notes:
- The store remembers expunged UIDs back to a floor; below it (``expunged_since`` is None) every
  UID of the client's range that is not in the mailbox is named, as §3.2.5.2 allows (clients
  ignore UIDs they never had). Ranges are computed as ranges, never UID by UID, so
  ``1:4294967295`` costs what the mailbox holds.
- UIDs still in the session's view (expunged by another session, not yet announced) are left
  out: the session announces them with VANISHED at its next chance.
- seq-match-data is accepted and not used: it only narrows what the conservative answer names.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from pymailsrv.imap import wire
from pymailsrv.imap.grammar import QresyncArgs, SeqSet

if TYPE_CHECKING:
    from pymailsrv.imap.session import Session

Ranges = list[tuple[int, int]]


def uid_ranges(seqset: SeqSet, top: int) -> Ranges:
    """The UID ranges of a sequence set (``*`` is ``top``), within 1..top, sorted and merged."""
    spans = []
    for lo, hi in seqset:
        a = top if lo is None else lo
        b = top if hi is None else hi
        a, b = min(a, b), min(max(a, b), top)
        if a <= b:
            spans.append((a, b))
    spans.sort()
    out: Ranges = []
    for a, b in spans:
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def gaps(ranges: Ranges, present: list[int]) -> Ranges:
    """The parts of ``ranges`` that hold none of ``present`` (ascending UIDs)."""
    out: Ranges = []
    for a, b in ranges:
        start = a
        for uid in present[bisect.bisect_left(present, a): bisect.bisect_right(present, b)]:
            if uid > start:
                out.append((start, uid - 1))
            start = uid + 1
        if start <= b:
            out.append((start, b))
    return out


def within(uids: list[int], ranges: Ranges) -> list[int]:
    starts = [a for a, _ in ranges]
    return [u for u in uids if (i := bisect.bisect_right(starts, u) - 1) >= 0 and u <= ranges[i][1]]


def ranges_text(ranges: Ranges) -> str:
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in ranges)


async def report_vanished(s: Session, modseq: int, ranges: Ranges) -> None:
    """``VANISHED (EARLIER)`` for the UIDs in ``ranges`` expunged after ``modseq``."""
    assert s.mailbox is not None
    expunged = await s.mailbox.expunged_since(modseq)
    if expunged is None:
        text = ranges_text(gaps(ranges, s.uids))
    else:
        text = wire.seq_set(u for u in within(expunged, ranges) if u not in s.info)
    if text:
        s.untagged("VANISHED (EARLIER) " + text)


def report_changed(s: Session, modseq: int, ranges: Ranges | None) -> None:
    """A FETCH (UID, FLAGS, MODSEQ) for every message changed after ``modseq``."""
    changed = [u for u in s.uids if s.info[u].modseq > modseq and u not in s.gone]
    if ranges is not None:
        changed = within(changed, ranges)
    for uid in changed:
        s.untagged(s.flags_response(uid, True))


async def after_select(s: Session, q: QresyncArgs) -> None:
    """RFC 7162 §3.2.5: the resync part of SELECT/EXAMINE (QRESYNC …), when the client's
    UIDVALIDITY is still the mailbox's."""
    assert s.mailbox is not None
    if q.uidvalidity != s.mailbox.uidvalidity:
        return
    top = s.mailbox.uidnext - 1
    known = uid_ranges(q.known_uids, top) if q.known_uids is not None else None
    await report_vanished(s, q.modseq, known if known is not None else [(1, top)] if top else [])
    report_changed(s, q.modseq, known)
