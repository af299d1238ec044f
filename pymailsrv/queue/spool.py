"""The durable spool: one file per message in ``queue_directory/<state>/<QUEUEID>``.

File layout (one file is cheaper than an envelope file plus a content file)::

    PYMQ1 <envelope length> <content length>\\n
    <envelope JSON>\\n
    <content bytes>
    <status record JSON>\\n      (appended, one line each, fdatasync'ed)
    ...

Implementation notes:
- ``put`` writes ``incoming/<ID>``, makes it durable, renames it into ``active/`` and makes the
  rename durable; only then does it return (the caller answers 250). Concurrent puts share their
  flushes (group commit, pymailsrv/durable.py).
- Status records are append-only (a recipient done, an attempt counted, a delay notice sent); a torn
  last line after a crash is ignored, so a record is either there whole or not at all.
- Moving a file between ``active`` and ``deferred`` needs no fsync: after a crash either place is
  recovered and retried. ``hold`` is fsynced because an admin expects it to stick.
- Files in ``incoming/`` at start-up were never acknowledged and are removed. Files that do not
  parse are moved to ``corrupt/`` with a log line, never deleted.
- Blocking disk work runs in a thread (asyncio.to_thread), never on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Iterator
from typing import Any

from pymailsrv.clock import Clock
from pymailsrv.durable import CommitBatcher, create, fsync_dir, make_dirs
from pymailsrv.errors import NotFound, TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.queue.base import STATES, CorruptFile, Envelope, QueueFile, Recipient
from pymailsrv.types import QueueId

log = get_logger("qmgr")

MAGIC = b"PYMQ1"
_DIRS = ("incoming", *STATES, "corrupt")


_ENV_FIELDS = tuple(f.name for f in dataclasses.fields(Envelope) if f.name != "recipients")
_RCPT_FIELDS = tuple(f.name for f in dataclasses.fields(Recipient))


def encode_envelope(env: Envelope) -> bytes:
    # by hand rather than dataclasses.asdict (deep copies): this runs once per spooled message
    raw: dict[str, Any] = {name: getattr(env, name) for name in _ENV_FIELDS}
    raw["recipients"] = [{name: getattr(r, name) for name in _RCPT_FIELDS} for r in env.recipients]
    return json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()


def decode_envelope(data: bytes) -> Envelope:
    raw = json.loads(data)
    if not isinstance(raw, dict) or not isinstance(raw.get("recipients"), list):
        raise CorruptFile("envelope is not an object with recipients")
    names = {f.name for f in dataclasses.fields(Envelope)}
    rnames = {f.name for f in dataclasses.fields(Recipient)}
    rcpts = []
    for r in raw["recipients"]:
        item = {k: v for k, v in r.items() if k in rnames}
        if "notify" in item:
            item["notify"] = tuple(item["notify"])
        rcpts.append(Recipient(**item))
    kwargs = {k: v for k, v in raw.items() if k in names and k != "recipients"}
    return Envelope(recipients=rcpts, **kwargs)


def encode_file(env: Envelope, content: bytes, records: list[dict[str, Any]] | None = None) -> bytes:
    head = encode_envelope(env)
    parts = [b"%s %d %d\n" % (MAGIC, len(head), len(content)), head, b"\n", content]
    for rec in records or ():
        parts.append(encode_record(rec))
    return b"".join(parts)


def encode_record(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def parse_file(queue_id: QueueId, state: str, data: bytes) -> QueueFile:
    """Parse a whole spool file (pure). Raises CorruptFile."""
    nl = data.find(b"\n", 0, 64)
    if nl < 0:
        raise CorruptFile("no header line")
    fields = data[:nl].split(b" ")
    if len(fields) != 3 or fields[0] != MAGIC or not fields[1].isdigit() or not fields[2].isdigit():
        raise CorruptFile("bad header line")
    hlen, clen = int(fields[1]), int(fields[2])
    start = nl + 1
    end_head = start + hlen
    if len(data) < end_head + 1 + clen or data[end_head:end_head + 1] != b"\n":
        raise CorruptFile("truncated")
    try:
        env = decode_envelope(data[start:end_head])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptFile(f"bad envelope: {exc}") from None
    qf = QueueFile(queue_id, state, env, clen, end_head + 1)
    tail = data[end_head + 1 + clen:]
    for line in tail.split(b"\n")[:-1]:  # the part after the last newline is a torn write
        try:
            rec = json.loads(line)
            if isinstance(rec, dict):
                qf.apply(rec)
        except (ValueError, TypeError, KeyError):
            continue
    return qf


class FileSpool:
    """The spool directory. Implements ``queue.base.Spool``; corrupt files go to ``corrupt/``."""

    def __init__(self, directory: str, clock: Clock, *, fsync: bool = True, id_suffix: str = "") -> None:
        self.directory = directory
        self.clock = clock
        self.fsync = fsync
        self.id_suffix = id_suffix
        self._last_us = 0
        # durably: the first message ever acknowledged is renamed into active/ made just now
        make_dirs(*(os.path.join(directory, name) for name in _DIRS), fsync=fsync)
        self._commits = CommitBatcher(fsync=fsync)

    # --- names ----------------------------------------------------------------------------------
    def path_of(self, state: str, queue_id: str = "") -> str:
        return os.path.join(self.directory, state, queue_id) if queue_id else os.path.join(self.directory, state)

    def new_id(self) -> QueueId:
        """Unique, sortable: microseconds since the epoch, 14 upper-case hex digits, bumped so
        that two ids from this process never collide; an SMTP worker process appends its own
        hex digit, so ids of different processes never collide either."""
        us = max(int(self.clock.time() * 1_000_000), self._last_us + 1)
        self._last_us = us
        return QueueId(f"{us:014X}{self.id_suffix}")

    @staticmethod
    def valid_id(name: str) -> bool:
        return _valid_id(name)

    def ids(self, state: str) -> list[str]:
        return [name for name in os.listdir(self.path_of(state)) if _valid_id(name)]

    def exists(self, queue_id: str, state: str) -> bool:
        return os.path.exists(self.path_of(state, queue_id))

    def locate(self, queue_id: str) -> str | None:
        """The state directory a message is in, or None."""
        if not _valid_id(queue_id):
            return None
        for state in STATES:
            if os.path.exists(self.path_of(state, queue_id)):
                return state
        return None

    # --- writing --------------------------------------------------------------------------------
    async def put(self, envelope: Envelope, content: bytes, *, state: str = "active",
                  records: list[dict[str, Any]] | None = None, queue_id: QueueId | None = None) -> QueueId:
        qid = queue_id or self.new_id()
        data = encode_file(envelope, content, records)
        tmp = self.path_of("incoming", qid)
        try:
            fd = await create(tmp, data)
            await self._commits.commit(fd, tmp, self.path_of(state, qid))
        except OSError as exc:
            log.error("%s: cannot write queue file: %s", qid, exc.strerror)
            raise TemporaryFailure("queue file write error") from exc
        return qid

    async def append(self, queue_id: str, state: str, records: list[dict[str, Any]]) -> None:
        """Append status records durably (one write, one fdatasync)."""
        data = b"".join(encode_record(r) for r in records)
        await asyncio.to_thread(self._append, self.path_of(state, queue_id), data)

    def _append(self, path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
            if self.fsync:
                os.fdatasync(fd)
        finally:
            os.close(fd)

    async def move(self, queue_id: str, src: str, dst: str, *, durable: bool = False) -> None:
        if src == dst:
            return
        try:
            os.rename(self.path_of(src, queue_id), self.path_of(dst, queue_id))
        except FileNotFoundError:
            raise NotFound(queue_id) from None
        if durable and self.fsync:
            await asyncio.to_thread(fsync_dir, self.path_of(dst))

    def remove(self, queue_id: str, state: str) -> None:
        try:
            os.unlink(self.path_of(state, queue_id))
        except FileNotFoundError:
            pass

    # --- reading --------------------------------------------------------------------------------
    def read_content(self, qf: QueueFile) -> bytes:
        """The message content (``qf.content_offset`` < 0: not known yet, found from the header)."""
        with open(self.path_of(qf.state, qf.queue_id), "rb") as fh:
            if qf.content_offset < 0:
                head = fh.read(64)
                nl = head.find(b"\n")
                fields = head[:nl].split(b" ") if nl > 0 else []
                if len(fields) != 3 or fields[0] != MAGIC or not fields[1].isdigit():
                    raise CorruptFile("bad header line")
                qf.content_offset = nl + 1 + int(fields[1]) + 1
            fh.seek(qf.content_offset)
            data = fh.read(qf.size)
        if len(data) != qf.size:
            raise CorruptFile("content truncated")
        return data

    def load(self, queue_id: str, state: str) -> QueueFile:
        with open(self.path_of(state, queue_id), "rb") as fh:
            data = fh.read()
        return parse_file(QueueId(queue_id), state, data)

    def scan(self, states: tuple[str, ...] = STATES, *, quarantine: bool = True) -> Iterator[QueueFile]:
        """Every readable message, oldest first per state; corrupt files are quarantined (only
        the queue manager does that: a listing must not move files under a running server)."""
        for state in states:
            for name in sorted(os.listdir(self.path_of(state))):
                if not _valid_id(name):
                    continue
                try:
                    yield self.load(name, state)
                except CorruptFile as exc:
                    if quarantine:
                        self.quarantine(name, state, str(exc))
                except FileNotFoundError:
                    continue

    def quarantine(self, queue_id: str, state: str, why: str) -> None:
        try:
            os.rename(self.path_of(state, queue_id), self.path_of("corrupt", queue_id))
        except OSError as exc:
            log.error("%s: cannot quarantine corrupt queue file: %s", queue_id, exc.strerror)
            return
        log.warning("%s: corrupt queue file (%s), moved to corrupt/", queue_id, why)

    def clean_incoming(self) -> int:
        """Remove files that were never acknowledged (a crash during put)."""
        n = 0
        for name in os.listdir(self.path_of("incoming")):
            try:
                os.unlink(self.path_of("incoming", name))
                n += 1
            except OSError:
                pass
        return n


def _valid_id(name: str) -> bool:
    return 10 <= len(name) <= 32 and all(c in "0123456789ABCDEF" for c in name)
