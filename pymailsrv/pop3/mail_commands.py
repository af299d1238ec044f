"""TRANSACTION-state commands (RFC 1939 §5, §7): STAT LIST RETR TOP DELE RSET NOOP UIDL."""

from __future__ import annotations

import asyncio
import os

from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.pop3 import replies
from pymailsrv.pop3.content import retr_payload, top_payload
from pymailsrv.pop3.maildrop import Maildrop
from pymailsrv.pop3.parser import Command, parse_number
from pymailsrv.pop3.session import Session
from pymailsrv.store.base import SEEN, Mailbox, MessageInfo

# Reads are batched off the event loop: one thread hop fetches the next few messages a client
# that RETRs in order will ask for; bounded per session.
READ_AHEAD_MESSAGES = 16
READ_AHEAD_BYTES = 1 << 20


def _drop(s: Session) -> Maildrop:
    assert s.maildrop is not None
    return s.maildrop


def _args(cmd: Command, least: int, most: int) -> tuple[str, ...]:
    if len(cmd.args) < least:
        raise ClientSyntaxError(replies.MISSING_ARGUMENT)
    if len(cmd.args) > most:
        raise ClientSyntaxError(replies.TOO_MANY_ARGUMENTS)
    return cmd.args


async def cmd_stat(s: Session, cmd: Command) -> None:
    _args(cmd, 0, 0)
    count, size = _drop(s).stat()
    s.send(replies.ok(f"{count} {size}"))


async def cmd_list(s: Session, cmd: Command) -> None:
    drop = _drop(s)
    args = _args(cmd, 0, 1)
    if args:
        n = parse_number(args[0])
        s.send(replies.ok(f"{n} {drop.get(n).size}"))
        return
    count, size = drop.stat()
    lines = [f"{n} {info.size}" for n, info in drop.live()]
    s.send(replies.multiline(replies.ok(replies.LIST_HEADER.format(count=count, octets=size)), lines))


async def cmd_uidl(s: Session, cmd: Command) -> None:
    """RFC 1939 §7 UIDL; the ids are Dovecot's pop3_uidl_format over IMAP UID/UIDVALIDITY."""
    drop = _drop(s)
    args = _args(cmd, 0, 1)
    if args:
        n = parse_number(args[0])
        s.send(replies.ok(f"{n} {drop.uidl(drop.get(n))}"))
        return
    lines = [f"{n} {drop.uidl(info)}" for n, info in drop.live()]
    s.send(replies.multiline(replies.ok(), lines))


async def cmd_retr(s: Session, cmd: Command) -> None:
    """RFC 1939 §7 RETR: CRLF, dot-stuffed, one write; \\Seen when the session ends (as Dovecot)."""
    n = parse_number(_args(cmd, 1, 1)[0])
    info = _drop(s).get(n)
    payload = retr_payload(await fetch(s, n, info))
    s.send(b"".join((replies.ok(replies.RETR_OK.format(octets=info.size)), payload, replies.END)))
    s.stats.retr += 1
    s.stats.retr_bytes += len(payload)
    if SEEN not in info.flags:
        s.seen.add(info.uid)


async def cmd_top(s: Session, cmd: Command) -> None:
    """RFC 1939 §7 TOP msg n: the header, the blank line, n body lines; no \\Seen."""
    arg_n, arg_lines = _args(cmd, 2, 2)
    n = parse_number(arg_n)
    lines = parse_number(arg_lines, replies.INVALID_LINES)
    info = _drop(s).get(n)
    payload = top_payload(await fetch(s, n, info), lines)
    s.send(b"".join((replies.ok(), payload, replies.END)))
    s.stats.top += 1
    s.stats.top_bytes += len(payload)


async def cmd_dele(s: Session, cmd: Command) -> None:
    n = parse_number(_args(cmd, 1, 1)[0])
    _drop(s).delete(n)
    s.send(replies.ok(replies.MARKED_DELETED))


async def cmd_rset(s: Session, cmd: Command) -> None:
    _args(cmd, 0, 0)
    _drop(s).reset()
    s.send(replies.ok())


async def cmd_noop(s: Session, cmd: Command) -> None:
    _args(cmd, 0, 0)
    s.send(replies.ok())


async def fetch(s: Session, n: int, info: MessageInfo) -> bytes:
    """The stored bytes of message ``n``, reading ahead in one thread hop when files allow it."""
    cached = s.read_ahead.pop(info.uid, None)
    if cached is not None:
        return cached
    mailbox = s.mailbox
    assert mailbox is not None
    paths = _paths(s, mailbox, _read_ahead_batch(_drop(s), n, info)) if s.files_readable else []
    if paths:
        s.read_ahead = await asyncio.to_thread(_read_files, paths)
        data = s.read_ahead.pop(info.uid, None)
        if data is not None:
            return data
    try:
        return await mailbox.read(info.uid)  # the store knows where a renamed file went
    except KeyError:
        raise Refusal(replies.MESSAGE_EXPUNGED.format(n=n)) from None


def _paths(s: Session, mailbox: Mailbox, batch: list[MessageInfo]) -> list[tuple[int, str]]:
    """Files to read ahead; a store whose messages are not files turns read-ahead off."""
    paths = []
    for m in batch:
        try:
            path = mailbox.path(m.uid)
        except KeyError:
            continue  # expunged by another session: fetch() asks the store, which knows
        except (NotImplementedError, OSError):
            s.files_readable = False
            return []
        if not os.path.isabs(path):
            s.files_readable = False
            return []
        paths.append((m.uid, path))
    return paths


def _read_ahead_batch(drop: Maildrop, n: int, info: MessageInfo) -> list[MessageInfo]:
    batch = [info]
    total = info.size
    for m in range(n + 1, min(n + READ_AHEAD_MESSAGES, len(drop) + 1)):
        try:
            nxt = drop.get(m)
        except Refusal:
            continue
        total += nxt.size
        if total > READ_AHEAD_BYTES:
            break
        batch.append(nxt)
    return batch


def _read_files(paths: list[tuple[int, str]]) -> dict[int, bytes]:
    """Whole files, with 4 system calls each (open, fstat, read, close: no buffered-reader
    probing); a file renamed by a flag change or expunged is left out (fetch asks the store)."""
    out: dict[int, bytes] = {}
    for uid, path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            size = os.fstat(fd).st_size
            data = os.read(fd, size + 1)
            if len(data) != size:  # short read, or grew after fstat: read to the end
                rest = [data]
                while chunk := os.read(fd, 1 << 20):
                    rest.append(chunk)
                data = b"".join(rest)
            out[uid] = data
        except OSError:
            continue
        finally:
            os.close(fd)
    return out
