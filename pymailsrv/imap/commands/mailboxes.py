"""Authenticated state: SELECT/EXAMINE (RFC 7162 CONDSTORE, QRESYNC), CREATE, DELETE, RENAME,
(UN)SUBSCRIBE, LIST (RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 3348 CHILDREN, RFC 6154
SPECIAL-USE), LSUB, STATUS, NAMESPACE (RFC 2342), GETQUOTA/GETQUOTAROOT (RFC 9208), APPEND
(UIDPLUS APPENDUID)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.imap import listing, wire
from pymailsrv.imap.commands import resync
from pymailsrv.imap.commands.base import Done, Server, mailbox_name, wire_name
from pymailsrv.imap.grammar import AppendArgs, Command, ListArgs, SelectArgs
from pymailsrv.imap.session import AUTH, SELECTED
from pymailsrv.store.base import RECENT, FolderExists, FolderNotFound, FolderStatus, MailboxGone

if TYPE_CHECKING:
    from pymailsrv.imap.session import Session

SEP = "."
STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE", "HIGHESTMODSEQ")


def _account(s: Session):  # type: ignore[no-untyped-def]
    assert s.account is not None
    return s.account


async def select(srv: Server, s: Session, cmd: Command) -> Done:
    a: SelectArgs = cmd.args
    readonly = cmd.name == "EXAMINE"
    name = mailbox_name(a.mailbox)
    unknown = sorted(set(a.params) - {"CONDSTORE", "QRESYNC"})
    if unknown:
        raise ClientSyntaxError(f"Unknown {cmd.name} parameter {unknown[0]}")
    if a.qresync is not None and "QRESYNC" not in s.enabled:
        raise ClientSyntaxError("QRESYNC isn't enabled")  # RFC 7162 §3.2.5
    reuse = s.mailbox if (s.mailbox is not None and s.mailbox.folder == name
                          and s.mailbox.readonly == readonly and not s.gone) else None
    res = None
    if reuse is not None:
        # re-SELECT of the open folder (clients do this often): keep the store's Mailbox
        try:
            if "CONDSTORE" in s.enabled or "CONDSTORE" in a.params:
                reuse.want_modseqs()
            res = await reuse.sync()
        except MailboxGone:  # renamed or deleted away: the name may hold a new folder now
            reuse = None
    if s.mailbox is not None:
        s.untagged("OK [CLOSED] Previous mailbox closed.")  # RFC 7162 §3.2.11, as Dovecot
    if s.mailbox is not None and reuse is None:
        await s.close_mailbox()
    s.state = AUTH
    if "CONDSTORE" in a.params:
        s.enabled.add("CONDSTORE")  # its HIGHESTMODSEQ comes with the others below
    if reuse is not None and res is not None:
        mailbox, recent = reuse, frozenset(s.recent | set(res.recent))
    else:
        mailbox = await srv.store.open(_account(s), name, readonly=readonly)
        if "CONDSTORE" in s.enabled:
            mailbox.want_modseqs()
        recent = (await mailbox.sync()).recent
    s.readonly = readonly or mailbox.readonly
    s.load_view(mailbox, recent)
    s.last_sync = srv.clock.monotonic()
    s.state = SELECTED
    s.flags_untagged()
    s.untagged(b"%d EXISTS" % len(s.uids))
    s.untagged(b"%d RECENT" % len(s.recent))
    first_unseen = next((i for i, u in enumerate(s.uids, 1) if "\\Seen" not in s.info[u].flags), 0)
    if first_unseen:
        s.untagged(b"OK [UNSEEN %d] First unseen." % first_unseen)
    s.untagged(b"OK [UIDVALIDITY %d] UIDs valid" % mailbox.uidvalidity)
    s.untagged(b"OK [UIDNEXT %d] Predicted next UID" % mailbox.uidnext)
    if "CONDSTORE" in s.enabled:  # RFC 7162 §3.1.2.1
        s.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % mailbox.highestmodseq)
    if a.qresync is not None:
        await resync.after_select(s, a.qresync)
    return Done(("Examine" if readonly else "Select") + " completed.",
                code="READ-ONLY" if s.readonly else "READ-WRITE")


async def create(srv: Server, s: Session, cmd: Command) -> Done:
    name = mailbox_name(cmd.args).rstrip(SEP)
    if name.upper() == "INBOX":
        raise Refusal("Mailbox already exists", code="ALREADYEXISTS")
    # The name itself first: the store checks all of it (characters, length, depth) before
    # anything exists, so a refused name leaves no superior folders behind.
    await srv.store.create_folder(_account(s), name)
    parts = name.split(SEP)
    for i in range(1, len(parts)):  # RFC 3501 §6.3.3: create the superior names too
        try:
            await srv.store.create_folder(_account(s), SEP.join(parts[:i]))
        except FolderExists:
            pass
    return Done("Create completed.")


async def delete(srv: Server, s: Session, cmd: Command) -> Done:
    name = mailbox_name(cmd.args)
    if name == "INBOX":
        raise Refusal("INBOX can't be deleted.", code="CANNOT")
    if s.mailbox is not None and s.mailbox.folder == name:
        await s.close_mailbox()  # RFC 3501 allows; the session goes back to authenticated
    await srv.store.delete_folder(_account(s), name)
    return Done("Delete completed.")


async def rename(srv: Server, s: Session, cmd: Command) -> Done:
    old, new = (mailbox_name(x) for x in cmd.args)
    if new.upper() == "INBOX":
        raise Refusal("Mailbox already exists", code="ALREADYEXISTS")
    selected = s.mailbox.folder if s.mailbox is not None else None
    await srv.store.rename_folder(_account(s), old, new.rstrip(SEP))
    if old != "INBOX" and selected is not None and (selected == old or selected.startswith(old + SEP)):
        await s.close_mailbox()  # as DELETE does: its own session is not told "deleted" by BYE
    return Done("Rename completed.")


async def subscribe(srv: Server, s: Session, cmd: Command) -> Done:
    await srv.store.set_subscribed(_account(s), mailbox_name(cmd.args), cmd.name == "SUBSCRIBE")
    return Done(cmd.name.capitalize() + " completed.")


def _list_line(kind: str, e: listing.Entry) -> bytes:
    line = (f"{kind} (" + " ".join(e.attrs) + f') "{SEP}" ').encode() + wire.string(wire_name(e.name))
    if e.childinfo:  # RFC 5258 §3.5
        line += b' ("CHILDINFO" (' + b" ".join(b'"%s"' % c.encode() for c in e.childinfo) + b"))"
    return line


def _patterns(a: ListArgs) -> list[re.Pattern[str]]:
    return [rx for rx in (listing.pattern(a.ref, p) for p in a.patterns) if rx is not None]


async def list_(srv: Server, s: Session, cmd: Command) -> Done:
    a: ListArgs = cmd.args
    problem = listing.check_options(a.select, a.ret)
    if problem:
        raise ClientSyntaxError(problem)
    if a.patterns == (b"",):
        s.untagged(f'LIST (\\Noselect) "{SEP}" ""')
        return Done("List completed.")
    folders = await srv.store.list_folders(_account(s))
    wanted = "SUBSCRIBED" in a.select or "SUBSCRIBED" in a.ret
    subscribed = await srv.store.subscriptions(_account(s)) if wanted else []
    for e in listing.list_entries(folders, subscribed, _patterns(a), a.select, a.ret):
        s.untagged(_list_line("LIST", e))
        if "STATUS" in a.ret and e.selectable:
            try:
                st = await srv.store.status(_account(s), e.name)
            except FolderNotFound:
                continue
            s.untagged(_status_line(e.name, st, a.status))
    return Done("List completed.")


async def lsub(srv: Server, s: Session, cmd: Command) -> Done:
    a: ListArgs = cmd.args
    rx = listing.pattern(a.ref, a.patterns[0])
    if rx is not None:
        folders = await srv.store.list_folders(_account(s))
        subscribed = await srv.store.subscriptions(_account(s))
        for e in listing.lsub_entries(folders, subscribed, rx):
            s.untagged(_list_line("LSUB", e))
    return Done("Lsub completed.")


def _status_line(name: str, st: FolderStatus, items: tuple[str, ...]) -> bytes:
    values = {"MESSAGES": st.messages, "RECENT": st.recent, "UIDNEXT": st.uidnext,
              "UIDVALIDITY": st.uidvalidity, "UNSEEN": st.unseen, "SIZE": st.size,
              "HIGHESTMODSEQ": st.highestmodseq}
    body = " ".join(f"{i} {values[i]}" for i in items)
    return b"STATUS " + wire.string(wire_name(name)) + f" ({body})".encode()


async def status(srv: Server, s: Session, cmd: Command) -> Done:
    raw, items = cmd.args
    bad = [i for i in items if i not in STATUS_ITEMS]
    if bad:
        raise ClientSyntaxError(f"Invalid status item {bad[0]}")
    name = mailbox_name(raw)
    if "HIGHESTMODSEQ" in items:
        s.enable_condstore()  # RFC 7162 §3.1
    st = await srv.store.status(_account(s), name)
    s.untagged(_status_line(name, st, items))
    return Done("Status completed.")


async def namespace(srv: Server, s: Session, cmd: Command) -> Done:
    s.untagged(f'NAMESPACE (("" "{SEP}")) NIL NIL')
    return Done("Namespace completed.")


async def _quota_lines(srv: Server, s: Session) -> None:
    q = await srv.store.quota(_account(s))
    res = []
    if q.bytes_limit:
        res.append(f"STORAGE {q.bytes_used // 1024} {q.bytes_limit // 1024}")
    if q.messages_limit:
        res.append(f"MESSAGE {q.messages} {q.messages_limit}")
    s.untagged('QUOTA "" (' + " ".join(res) + ")")


async def getquota(srv: Server, s: Session, cmd: Command) -> Done:
    if cmd.args != b"":
        raise Refusal("Quota root does not exist", code="NONEXISTENT")
    await _quota_lines(srv, s)
    return Done("Getquota completed.")


async def getquotaroot(srv: Server, s: Session, cmd: Command) -> Done:
    name = mailbox_name(cmd.args)
    await srv.store.status(_account(s), name)  # NO [NONEXISTENT] for a missing folder
    s.untagged(b"QUOTAROOT " + wire.string(wire_name(name)) + b' ""')
    await _quota_lines(srv, s)
    return Done("Getquotaroot completed.")


async def append(srv: Server, s: Session, cmd: Command) -> Done:
    a: AppendArgs = cmd.args
    name = mailbox_name(a.mailbox)
    flags = [f for f in a.flags if f != RECENT]
    if not a.message:
        raise Refusal("Can't save a zero byte message.")
    date = a.date if a.date is not None else srv.clock.time()
    current = s.mailbox if s.mailbox is not None and s.mailbox.folder == name and not s.readonly else None
    if current is not None:
        try:
            uid = await current.append(a.message, flags, date)
            s.dirty = True
            return Done("Append completed.", code=f"APPENDUID {current.uidvalidity} {uid}")
        except MailboxGone:
            s.mailbox_lost = True  # renamed or deleted away: the name decides where APPEND goes
    try:
        mailbox = await srv.store.open(_account(s), name)
        try:
            uid = await mailbox.append(a.message, flags, date)
        finally:
            await mailbox.close()
    except FolderNotFound as exc:  # RFC 3501 §6.3.11: the client may CREATE it and try again
        raise Refusal("Mailbox doesn't exist: " + name, code="TRYCREATE") from exc
    return Done("Append completed.", code=f"APPENDUID {mailbox.uidvalidity} {uid}")
