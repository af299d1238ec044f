"""The per-folder index (``pymailsrv-index.sqlite`` in the folder directory).

It holds what a Maildir file name does not say: internal dates (a stat per file otherwise), the
RFC822 size of files without ``,W=``, the ``\\Recent`` watermark and cached blobs (envelope,
bodystructure) that IMAP puts there; those are a cache, rebuilt from the files if lost. It is
also where every process serving the folder keeps the modification sequences (RFC 7162): the
folder's counter, each message's modseq with the flags (``:2,`` info) it was given for, and the
expunged UIDs. ``store.folder`` explains how they are kept; losing them is recovered from with a
new counter that starts above any value handed out before (``first_modseq``).

Each Folder uses it under the folder's lock, from threads or, for short writes, from the event
loop inside ``nowait()``: there a write that would wait for another process's writer raises
IndexBusy instead (with ``synchronous=OFF`` a write is a page-cache copy, cheaper than the thread
hop; waiting for a lock is not). ``cache_get`` uses a separate read connection on the event loop
(a point query on a WAL database never waits for a writer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("pymailsrv.store")

INDEX_FILE = "pymailsrv-index.sqlite"
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS msg (uid INTEGER PRIMARY KEY, idate REAL NOT NULL, vsize INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cache (uid INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                                  PRIMARY KEY (uid, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mods (uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL, info TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS mods_by_modseq ON mods (modseq);
CREATE TABLE IF NOT EXISTS vanished (uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS vanished_by_modseq ON vanished (modseq);
"""
VANISHED_KEEP = 50_000  # expunged UIDs remembered; older ones are pruned in halves (``vanished_floor``)
EXPUNGED = None  # in ``record``: the message is gone


def first_modseq(had_uids: bool) -> int:
    """Where a new counter starts: 1 for a new folder; for one whose UIDs were handed out before
    (the index was lost, or the folder comes from Dovecot), milliseconds since the epoch, above
    any value an earlier counter reached unless it ran at over a thousand changes a second."""
    return int(time.time() * 1000) if had_uids else 1


@dataclass(slots=True)
class ModseqChanges:
    """What ``record`` or ``changes_since`` found: the counter, each recorded message's modseq,
    and what other processes recorded after the caller's last look."""

    highest: int
    epoch: int
    assigned: dict[int, int] = field(default_factory=dict)  # uid -> modseq given or adopted here
    others: list[tuple[int, int, str | None]] = field(default_factory=list)  # (uid, modseq, info|EXPUNGED)


Rider = Callable[[sqlite3.Connection], object]  # a write that joins another's transaction


def put_rows(rows: list[tuple[int, float, int]]) -> Rider:
    """(uid, internal date, RFC822 size) rows for ``msg``."""
    return lambda c: c.executemany("INSERT OR REPLACE INTO msg VALUES (?, ?, ?)", rows)


def delete_rows(uids: list[int]) -> Rider:
    """Everything the index holds for expunged UIDs but their modseq records."""
    keys = [(u,) for u in uids]

    def fill(c: sqlite3.Connection) -> None:
        c.executemany("DELETE FROM msg WHERE uid=?", keys)
        c.executemany("DELETE FROM cache WHERE uid=?", keys)

    return fill


class IndexBusy(Exception):
    """A write inside ``FolderIndex.nowait()`` found the database locked by another writer."""


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    return conn


def stored_uidvalidity(folder_path: str) -> int:
    """The UIDVALIDITY an existing index was built for (0 if none), so a rebuilt uidlist can
    pick a different one even within the same second."""
    path = os.path.join(folder_path, INDEX_FILE)
    if not os.path.exists(path):
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='uidvalidity'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def _ready(conn: sqlite3.Connection, uidvalidity: int) -> bool:
    """Is this index already set up for ``uidvalidity``, with its modseq counter started? (Only
    the write transaction below sets ``epoch``, together with every table.)"""
    try:
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('uidvalidity', 'epoch')").fetchall())
    except sqlite3.Error:
        return False
    return rows.get("uidvalidity") == uidvalidity and "epoch" in rows


class FolderIndex:
    def __init__(self, folder_path: str, uidvalidity: int, start_modseq: int = 1) -> None:
        self.path = os.path.join(folder_path, INDEX_FILE)
        self.conn: sqlite3.Connection | None = None
        self.reader: sqlite3.Connection | None = None
        self.epoch = 0  # set when the modseq counter starts; a snapshot of another epoch is stale
        self._wait = True
        self._busy_ms = BUSY_TIMEOUT_MS  # the connection's (``_connect``)
        self._open(uidvalidity, start_modseq)

    def _open(self, uidvalidity: int, start: int) -> None:
        for attempt in range(2):
            try:
                conn = _connect(self.path)
                if _ready(conn, uidvalidity):  # the usual case (a folder opened again): no write
                    self.conn = conn
                    self.epoch = self.get_meta("epoch", 0)
                    return
                conn.executescript(_SCHEMA)
                with conn:  # one transaction: processes opening a new index together agree
                    conn.execute("BEGIN IMMEDIATE")
                    row = conn.execute("SELECT value FROM meta WHERE key='uidvalidity'").fetchone()
                    if row is not None and row[0] != uidvalidity:
                        for table in ("msg", "cache", "meta", "mods", "vanished"):
                            conn.execute(f"DELETE FROM {table}")
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('uidvalidity', ?)", (uidvalidity,))
                    # expunges before the counter started are unknown: VANISHED is then conservative
                    conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                                     [("highestmodseq", start), ("vanished_floor", start),
                                      ("vanished_rows", 0), ("epoch", time.time_ns())])
                self.conn = conn
                self.epoch = self.get_meta("epoch", 0)
                return
            except sqlite3.Error as exc:
                log.warning("index %s unusable (%s); rebuilding", self.path, exc)
                if attempt == 0:
                    for suffix in ("", "-wal", "-shm"):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(self.path + suffix)
        self.conn = None

    def close(self) -> None:
        for conn in (self.conn, self.reader):
            if conn is not None:
                conn.close()
        self.conn = self.reader = None

    @contextlib.contextmanager
    def nowait(self) -> Iterator[None]:
        """Writes in this block raise IndexBusy rather than wait for another writer."""
        if self.conn is None:
            yield
            return
        self._timeout(0)
        self._wait = False
        try:
            yield
        finally:
            self._wait = True

    def _timeout(self, ms: int) -> None:
        """Set the busy timeout only when it changes: most writes are on the loop, in ``nowait``,
        and the two PRAGMAs each way cost a quarter of a small transaction. Whatever may wait
        sets it back first (``_write``, ``_run``)."""
        if self._busy_ms != ms and self.conn is not None:
            self.conn.execute(f"PRAGMA busy_timeout={ms}")
            self._busy_ms = ms

    def _write(self, fill: Callable[[sqlite3.Connection], object], begin: str = "BEGIN") -> bool:
        """One transaction (reads too); errors are logged, except IndexBusy in ``nowait``. False if
        it failed."""
        if self.conn is None:
            return False
        if self._wait:
            self._timeout(BUSY_TIMEOUT_MS)
        try:
            with self.conn:
                self.conn.execute(begin)
                fill(self.conn)
            return True
        except sqlite3.OperationalError as exc:
            if not self._wait and exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise IndexBusy(self.path) from exc
            log.warning("index %s: %s", self.path, exc)
        except sqlite3.Error as exc:
            log.warning("index %s: %s", self.path, exc)
        return False

    def _run(self, sql: str, args: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        if self.conn is None:
            return []
        if self._wait:
            self._timeout(BUSY_TIMEOUT_MS)
        try:
            return self.conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            log.warning("index %s: %s", self.path, exc)
            return []

    def load(self) -> dict[int, tuple[float, int]]:
        return {int(u): (float(d), int(v)) for u, d, v in self._run("SELECT uid, idate, vsize FROM msg")}

    def lookup(self, uids: list[int]) -> dict[int, tuple[float, int]]:
        """(internal date, RFC822 size) of the given UIDs that the index knows."""
        if self.conn is None or not uids:
            return {}
        if len(uids) > 500:
            return self.load()
        marks = ",".join("?" * len(uids))
        rows = self._run(f"SELECT uid, idate, vsize FROM msg WHERE uid IN ({marks})", uids)
        return {int(u): (float(d), int(v)) for u, d, v in rows}

    def put(self, rows: list[tuple[int, float, int]]) -> None:
        if rows:
            self._write(put_rows(rows))

    def delete(self, uids: list[int]) -> None:
        if uids:
            self._write(delete_rows(uids))

    def run(self, rider: Rider) -> None:
        """A rider in a transaction of its own."""
        self._write(rider)

    def get_meta(self, key: str, default: int) -> int:
        rows = self._run("SELECT value FROM meta WHERE key=?", (key,))
        return int(rows[0][0]) if rows else default

    def claim_recent(self, upto: int) -> int | None:
        """The first UID no session of any process has reported \\Recent yet (``first_recent``),
        having claimed every UID below ``upto`` for the caller, in one write transaction: of two
        processes' sessions that see a new message, one reports it \\Recent (RFC 3501 §2.3.2).
        None if the index could not be written."""
        got: list[int] = []

        def claim(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT value FROM meta WHERE key='first_recent'").fetchone()
            got.append(int(row[0]) if row else 1)
            if upto > got[0]:
                c.execute("INSERT OR REPLACE INTO meta VALUES ('first_recent', ?)", (upto,))

        return got[0] if self._write(claim, "BEGIN IMMEDIATE") and got else None

    def cache_put(self, rows: list[tuple[int, str, bytes]]) -> None:
        if rows:
            self._write(lambda c: c.executemany("INSERT OR REPLACE INTO cache VALUES (?, ?, ?)", rows))

    def cache_get(self, uid: int, key: str) -> bytes | None:
        """A point read on the reader connection (event-loop side)."""
        if self.conn is None:
            return None
        try:
            if self.reader is None:
                self.reader = _connect(self.path)
            row = self.reader.execute("SELECT value FROM cache WHERE uid=? AND key=?", (uid, key)).fetchone()
        except sqlite3.Error:
            return None
        return None if row is None else bytes(row[0])

    # -- modification sequences (RFC 7162) ------------------------------------------------------
    def data_version(self) -> int | None:
        """Changes when another connection commits (SQLite's ``PRAGMA data_version``): a look at
        shared memory, no disk access. None if the index is unusable."""
        if self.conn is None:
            return None
        try:
            return int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return None

    def _since(self, c: sqlite3.Connection, known: int, out: ModseqChanges) -> None:
        out.others = c.execute("SELECT uid, modseq, info FROM mods WHERE modseq > ?1 UNION ALL "
                               "SELECT uid, modseq, NULL FROM vanished WHERE modseq > ?1", (known,)).fetchall()

    def changes_since(self, known: int) -> ModseqChanges | None:
        """The counter and every record after ``known`` (one read transaction); None if unusable,
        IndexBusy inside ``nowait``."""
        out = ModseqChanges(0, self.epoch)

        def read(c: sqlite3.Connection) -> None:
            out.highest = self._meta(c, "highestmodseq")
            self._since(c, known, out)

        return out if self._write(read) else None

    def record(self, known: int, changes: Mapping[int, str | None], alone: bool = False,
               riders: Iterable[Rider] = ()) -> ModseqChanges | None:
        """Give modseqs to ``changes`` (uid -> the flags info a message now has, or EXPUNGED) in
        one write transaction, and return them with what others recorded after ``known``. A
        change another process recorded after ``known`` for the same state is adopted, not
        counted twice; everything else gets the next value of the counter, one for the whole
        call. ``alone``: the caller knows nobody else wrote since it read the counter as
        ``known`` (``data_version``), so nothing is read back. ``riders`` (the rows of the change
        recorded) run in the same transaction. None if the index is unusable; IndexBusy inside
        ``nowait``."""
        out = ModseqChanges(0, self.epoch)

        def fill(c: sqlite3.Connection) -> None:
            for rider in riders:
                rider(c)
            out.highest = known if alone else self._meta(c, "highestmodseq")
            new = out.highest + 1  # taken only if something isn't adopted: HIGHESTMODSEQ moves on a change
            if not alone:
                self._since(c, known, out)
            theirs = {(uid, info): modseq for uid, modseq, info in out.others}
            rows: list[tuple[int, int, str]] = []
            gone: list[tuple[int, int]] = []
            for uid, info in changes.items():
                adopted = theirs.get((uid, info))
                if adopted is not None:
                    out.assigned[uid] = adopted
                    continue
                out.assigned[uid] = new
                if info is EXPUNGED:
                    gone.append((uid, new))
                else:
                    rows.append((uid, new, info))
            if rows or gone:
                out.highest = new
                c.execute("UPDATE meta SET value=? WHERE key='highestmodseq'", (new,))
            if rows:
                c.executemany("INSERT OR REPLACE INTO mods VALUES (?, ?, ?)", rows)
            if gone:
                c.executemany("DELETE FROM mods WHERE uid=?", [(u,) for u, _ in gone])
                c.executemany("INSERT OR REPLACE INTO vanished VALUES (?, ?)", gone)
                self._prune(c, len(gone))

        return out if self._write(fill, "BEGIN IMMEDIATE") else None

    def _prune(self, c: sqlite3.Connection, added: int) -> None:
        """Keep at most VANISHED_KEEP expunged UIDs: beyond that the older half goes and the floor
        rises to the newest modseq dropped (VANISHED is conservative below it)."""
        rows = self._meta(c, "vanished_rows") + added
        if rows > VANISHED_KEEP:
            cut = c.execute("SELECT modseq FROM vanished ORDER BY modseq DESC LIMIT 1 OFFSET ?",
                            (VANISHED_KEEP // 2,)).fetchone()
            if cut is not None:
                c.execute("DELETE FROM vanished WHERE modseq <= ?", (cut[0],))
                c.execute("UPDATE meta SET value=max(value, ?) WHERE key='vanished_floor'", (cut[0],))
            rows = int(c.execute("SELECT count(*) FROM vanished").fetchone()[0])
        c.execute("UPDATE meta SET value=? WHERE key='vanished_rows'", (rows,))

    @staticmethod
    def _meta(c: sqlite3.Connection, key: str) -> int:
        row = c.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def expunged_since(self, modseq: int) -> list[int] | None:
        """UIDs expunged after ``modseq``, ascending; None below the floor (or unusable)."""
        out: list[int] | None = None

        def read(c: sqlite3.Connection) -> None:
            nonlocal out
            if modseq >= self._meta(c, "vanished_floor"):
                rows = c.execute("SELECT uid FROM vanished WHERE modseq > ? ORDER BY uid", (modseq,))
                out = [int(u) for (u,) in rows]

        self._write(read)
        return out
