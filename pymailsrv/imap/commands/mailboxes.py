"""Authenticated state: SELECT/EXAMINE (RFC 7162 CONDSTORE, QRESYNC), CREATE, DELETE, RENAME,
(UN)SUBSCRIBE, LIST (RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 3348 CHILDREN, RFC 6154
SPECIAL-USE), LSUB, STATUS, NAMESPACE (RFC 2342), GETQUOTA/GETQUOTAROOT (RFC 9208), APPEND
(UIDPLUS APPENDUID)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pymailsrv import mutf7 as utf7
from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.imap import wire
from pymailsrv.imap.commands import resync
from pymailsrv.imap.commands.base import Done, mailbox_name, wire_name
from pymailsrv.imap.grammar import AppendArgs, Command, ListArgs, SelectArgs
from pymailsrv.imap.session import AUTH, SELECTED
from pymailsrv.store.base import RECENT, FolderExists, FolderInfo, FolderNotFound, FolderStatus

if TYPE_CHECKING:
    from pymailsrv.imap.server import ImapServer
    from pymailsrv.imap.session import Session

SEP = "."
STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE", "HIGHESTMODSEQ")


def _account(s: Session):  # type: ignore[no-untyped-def]
    assert s.account is not None
    return s.account


async def select(srv: ImapServer, s: Session, cmd: Command) -> Done:
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
    if s.mailbox is not None:
        s.untagged("OK [CLOSED] Previous mailbox closed.")  # RFC 7162 §3.2.11, as Dovecot
    if s.mailbox is not None and reuse is None:
        await s.close_mailbox()
    s.state = AUTH
    if "CONDSTORE" in a.params:
        s.enabled.add("CONDSTORE")  # its HIGHESTMODSEQ comes with the others below
    if reuse is not None:
        # re-SELECT of the open folder (clients do this often): keep the store's Mailbox
        if "CONDSTORE" in s.enabled:
            reuse.want_modseqs()
        res = await reuse.sync()
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


async def create(srv: ImapServer, s: Session, cmd: Command) -> Done:
    name = mailbox_name(cmd.args).rstrip(SEP)
    if name.upper() == "INBOX":
        raise Refusal("Mailbox already exists", code="ALREADYEXISTS")
    parts = name.split(SEP)
    for i in range(1, len(parts)):  # RFC 3501 §6.3.3: create the superior names too
        try:
            await srv.store.create_folder(_account(s), SEP.join(parts[:i]))
        except FolderExists:
            pass
    await srv.store.create_folder(_account(s), name)
    return Done("Create completed.")


async def delete(srv: ImapServer, s: Session, cmd: Command) -> Done:
    name = mailbox_name(cmd.args)
    if name == "INBOX":
        raise Refusal("INBOX can't be deleted.", code="CANNOT")
    if s.mailbox is not None and s.mailbox.folder == name:
        await s.close_mailbox()  # RFC 3501 allows; the session goes back to authenticated
    await srv.store.delete_folder(_account(s), name)
    return Done("Delete completed.")


async def rename(srv: ImapServer, s: Session, cmd: Command) -> Done:
    old, new = (mailbox_name(x) for x in cmd.args)
    if new.upper() == "INBOX":
        raise Refusal("Mailbox already exists", code="ALREADYEXISTS")
    await srv.store.rename_folder(_account(s), old, new.rstrip(SEP))
    return Done("Rename completed.")


async def subscribe(srv: ImapServer, s: Session, cmd: Command) -> Done:
    await srv.store.set_subscribed(_account(s), mailbox_name(cmd.args), cmd.name == "SUBSCRIBE")
    return Done(cmd.name.capitalize() + " completed.")


def _pattern(ref: bytes, pat: bytes) -> re.Pattern[str]:
    try:
        text = utf7.decode(ref) + utf7.decode(pat)
    except (utf7.Utf7Error, UnicodeDecodeError) as exc:
        raise ClientSyntaxError("Invalid mailbox pattern") from exc
    if text[:5].upper() == "INBOX" and (len(text) == 5 or text[5] in SEP + "*%"):
        text = "INBOX" + text[5:]
    rx = "".join(".*" if c == "*" else "[^.]*" if c == "%" else re.escape(c) for c in text)
    return re.compile(rx + r"\Z", re.DOTALL)


def _attrs(f: FolderInfo, subscribed_attr: bool) -> list[str]:
    attrs = ["\\HasChildren" if f.has_children else "\\HasNoChildren"]
    if not f.selectable:
        attrs.insert(0, "\\Noselect")
    if f.special_use:
        attrs.append(f.special_use)
    if subscribed_attr and f.subscribed:
        attrs.append("\\Subscribed")
    return attrs


def _list_line(kind: str, attrs: list[str], name: str) -> bytes:
    return (f"{kind} (" + " ".join(attrs) + f') "{SEP}" ').encode() + wire.string(wire_name(name))


async def list_(srv: ImapServer, s: Session, cmd: Command) -> Done:
    a: ListArgs = cmd.args
    if a.patterns == (b"",):
        s.untagged(f'LIST (\\Noselect) "{SEP}" ""')
        return Done("List completed.")
    if "RECURSIVEMATCH" in a.select and len(set(a.select) - {"RECURSIVEMATCH", "REMOTE"}) == 0:
        raise ClientSyntaxError("RECURSIVEMATCH needs another selection option")
    rxs = [_pattern(a.ref, p) for p in a.patterns]
    folders = await srv.store.list_folders(_account(s))
    want_sub = "SUBSCRIBED" in a.select or "SUBSCRIBED" in a.ret
    recursive = "RECURSIVEMATCH" in a.select and "SUBSCRIBED" in a.select
    subscribed_children = {f.name.rpartition(SEP)[0] for f in folders if f.subscribed and SEP in f.name}
    for f in folders:
        if not any(rx.match(f.name) for rx in rxs):
            continue
        childinfo = recursive and any(c == f.name or c.startswith(f.name + SEP) for c in subscribed_children)
        if "SUBSCRIBED" in a.select and not f.subscribed and not childinfo:
            continue
        if "SPECIAL-USE" in a.select and not f.special_use:
            continue
        line = _list_line("LIST", _attrs(f, want_sub), f.name)
        if childinfo:  # RFC 5258 §3.5
            line += b' ("CHILDINFO" ("SUBSCRIBED"))'
        s.untagged(line)
        if "STATUS" in a.ret and f.selectable:
            try:
                st = await srv.store.status(_account(s), f.name)
            except FolderNotFound:
                continue
            s.untagged(_status_line(f.name, st, a.status))
    return Done("List completed.")


async def lsub(srv: ImapServer, s: Session, cmd: Command) -> Done:
    a: ListArgs = cmd.args
    rx = _pattern(a.ref, a.patterns[0])
    for f in await srv.store.list_folders(_account(s)):
        if f.subscribed and rx.match(f.name):
            attrs = ["\\Noselect"] if not f.selectable else []
            s.untagged(_list_line("LSUB", attrs, f.name))
    return Done("Lsub completed.")


def _status_line(name: str, st: FolderStatus, items: tuple[str, ...]) -> bytes:
    values = {"MESSAGES": st.messages, "RECENT": st.recent, "UIDNEXT": st.uidnext,
              "UIDVALIDITY": st.uidvalidity, "UNSEEN": st.unseen, "SIZE": st.size,
              "HIGHESTMODSEQ": st.highestmodseq}
    body = " ".join(f"{i} {values[i]}" for i in items)
    return b"STATUS " + wire.string(wire_name(name)) + f" ({body})".encode()


async def status(srv: ImapServer, s: Session, cmd: Command) -> Done:
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


async def namespace(srv: ImapServer, s: Session, cmd: Command) -> Done:
    s.untagged(f'NAMESPACE (("" "{SEP}")) NIL NIL')
    return Done("Namespace completed.")


async def _quota_lines(srv: ImapServer, s: Session) -> None:
    q = await srv.store.quota(_account(s))
    res = []
    if q.bytes_limit:
        res.append(f"STORAGE {q.bytes_used // 1024} {q.bytes_limit // 1024}")
    if q.messages_limit:
        res.append(f"MESSAGE {q.messages} {q.messages_limit}")
    s.untagged('QUOTA "" (' + " ".join(res) + ")")


async def getquota(srv: ImapServer, s: Session, cmd: Command) -> Done:
    if cmd.args != b"":
        raise Refusal("Quota root does not exist", code="NONEXISTENT")
    await _quota_lines(srv, s)
    return Done("Getquota completed.")


async def getquotaroot(srv: ImapServer, s: Session, cmd: Command) -> Done:
    name = mailbox_name(cmd.args)
    await srv.store.status(_account(s), name)  # NO [NONEXISTENT] for a missing folder
    s.untagged(b"QUOTAROOT " + wire.string(wire_name(name)) + b' ""')
    await _quota_lines(srv, s)
    return Done("Getquotaroot completed.")


async def append(srv: ImapServer, s: Session, cmd: Command) -> Done:
    a: AppendArgs = cmd.args
    name = mailbox_name(a.mailbox)
    flags = [f for f in a.flags if f != RECENT]
    if not a.message:
        raise Refusal("Can't save a zero byte message.")
    current = s.mailbox if s.mailbox is not None and s.mailbox.folder == name and not s.readonly else None
    try:
        mailbox = current or await srv.store.open(_account(s), name)
    except FolderNotFound as exc:
        raise Refusal("Mailbox doesn't exist: " + name, code="TRYCREATE") from exc
    try:
        uid = await mailbox.append(a.message, flags, a.date if a.date is not None else srv.clock.time())
        if current is not None:
            s.dirty = True
        validity = mailbox.uidvalidity
    finally:
        if current is None:
            await mailbox.close()
    return Done("Append completed.", code=f"APPENDUID {validity} {uid}")
