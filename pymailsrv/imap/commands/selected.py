"""Selected state: CHECK, CLOSE, UNSELECT (RFC 3691), EXPUNGE, UID EXPUNGE (RFC 4315), STORE
(with RFC 7162 UNCHANGEDSINCE), COPY/MOVE (RFC 6851) with COPYUID, IDLE (RFC 2177)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.imap import wire
from pymailsrv.imap.commands.base import Done, Server, mailbox_name
from pymailsrv.imap.grammar import Command, StoreArgs
from pymailsrv.store.base import RECENT, FolderNotFound, Mailbox, MailboxGone

if TYPE_CHECKING:
    from pymailsrv.imap.session import Session


def _mb(s: Session) -> Mailbox:
    assert s.mailbox is not None
    return s.mailbox


def _writable(s: Session) -> None:
    if s.readonly:
        raise Refusal("Mailbox is read-only.", code="READ-ONLY")


async def check(srv: Server, s: Session, cmd: Command) -> Done:
    return Done("Check completed.")


async def close(srv: Server, s: Session, cmd: Command) -> Done:
    if not s.readonly:
        await _mb(s).expunge()  # RFC 3501 §6.4.2: silently, no EXPUNGE responses
    await s.close_mailbox()
    return Done("Close completed.")


async def unselect(srv: Server, s: Session, cmd: Command) -> Done:
    await s.close_mailbox()
    return Done("Unselect completed.")


async def expunge(srv: Server, s: Session, cmd: Command) -> Done:
    _writable(s)
    uids = s.resolve(cmd.args, True) if cmd.uid else None
    if uids is not None and not uids:
        return Done("Expunge completed.")
    removed = await _mb(s).expunge(uids)
    s.gone.difference_update(removed)
    s.forget(sorted(removed))
    if "QRESYNC" in s.enabled:  # RFC 7162 §3.2.10
        return Done("Expunge completed.", code=f"HIGHESTMODSEQ {_mb(s).highestmodseq}")
    return Done("Expunge completed.")


async def store(srv: Server, s: Session, cmd: Command) -> Done:
    a: StoreArgs = cmd.args
    _writable(s)
    uids = [u for u in s.resolve(a.seqset, cmd.uid) if u not in s.gone]
    flags = [f for f in a.flags if f != RECENT]
    if any(f.startswith("\\") and f not in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
           for f in flags):
        raise ClientSyntaxError("Invalid system flag")
    modified: list[int] = []
    if a.unchangedsince is not None:  # RFC 7162 §3.1.3
        s.enable_condstore()
        await s.sync(allow_expunge=False)  # compare with the modseqs as they are now
        uids = [u for u in uids if u not in s.gone]
        modified = [u for u in uids if s.info[u].modseq > a.unchangedsince]
        uids = [u for u in uids if s.info[u].modseq <= a.unchangedsince]
    before = {u: s.info[u].modseq for u in uids}
    changed = await _mb(s).set_flags(uids, flags, a.mode) if uids else []  # type: ignore[arg-type]
    s.take(changed, also=set(flags))
    if not a.silent:
        for u in uids:
            if u in s.info:
                s.untagged(s.flags_response(u, cmd.uid))
    elif "CONDSTORE" in s.enabled:
        for u in uids:  # RFC 7162 §3.1.3: .SILENT still reports the new MODSEQ of what changed
            if u in s.info and s.info[u].modseq != before[u]:
                s.untagged(b"%d FETCH (UID %d MODSEQ (%d))" % (s.seq_of(u), u, s.info[u].modseq))
    if modified:
        nums = modified if cmd.uid else [s.seq_of(u) for u in modified]
        return Done("Conditional STORE failed", code="MODIFIED " + wire.seq_set(nums))
    return Done("Store completed.")


async def copy(srv: Server, s: Session, cmd: Command) -> Done:
    seqset, raw = cmd.args
    dest = mailbox_name(raw)
    is_move = cmd.name.endswith("MOVE")
    if is_move:
        _writable(s)
    uids = [u for u in s.resolve(seqset, cmd.uid) if u not in s.gone]
    if not uids:
        if not cmd.uid:
            raise Refusal("Some of the requested messages no longer exist.", code="EXPUNGEISSUED")
        return Done(("Move" if is_move else "Copy") + " completed.")
    try:
        op = _mb(s).move if is_move else _mb(s).copy
        validity, pairs = await op(uids, dest)
    except MailboxGone:
        raise  # the source, the selected folder, went away (not the destination)
    except FolderNotFound as exc:
        raise Refusal("Mailbox doesn't exist: " + dest, code="TRYCREATE") from exc
    if s.mailbox is not None and dest == s.mailbox.folder:
        s.dirty = True
    code = ""
    if pairs:
        code = f"COPYUID {validity} {wire.seq_set(p[0] for p in pairs)} {wire.seq_set(p[1] for p in pairs)}"
    if is_move:
        if code:
            s.untagged(f"OK [{code}] Moved UIDs.")
        moved = sorted(p[0] for p in pairs)
        s.gone.difference_update(moved)
        s.forget(moved)
        return Done("Move completed.")
    return Done("Copy completed.", code=code)


async def idle(srv: Server, s: Session, cmd: Command) -> Done:
    """RFC 2177: push EXISTS/EXPUNGE/FETCH until DONE; a keep-alive every idle_notify seconds.
    The store wakes us on changes (its own poller finds other processes' changes), so an idle
    session costs one pending read and one pending wait, not a timer tick per second."""
    s.write(b"+ idling\r\n")
    await s.flush()
    reader = asyncio.ensure_future(s.client_line())
    clock = srv.clock
    next_note = clock.monotonic() + srv.config.idle_notify
    try:
        while not reader.done():
            wait = max(0.01, min(next_note - clock.monotonic(), srv.config.idle_poll_max))
            if s.mailbox is not None:
                waiter = asyncio.ensure_future(s.mailbox.wait_for_change(wait))
                await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                elif waiter.result():
                    await s.sync(allow_expunge=True)
                    if s.mailbox_lost:
                        return Done(sent=True)  # no tagged reply: the server says BYE at once
            else:
                await asyncio.wait({reader}, timeout=wait)
            if clock.monotonic() >= next_note:
                s.untagged("OK Still here")
                next_note = clock.monotonic() + srv.config.idle_notify
            await s.flush()
        line = reader.result()
    finally:
        if not reader.done():
            reader.cancel()
    if line.strip().upper() != b"DONE":
        raise ClientSyntaxError("Expected DONE.")
    return Done("Idle completed.")
