"""The per-folder index and cache (``pymailsrv-index.sqlite`` in the folder directory).

It holds what a Maildir file name does not say: internal dates (a stat per file otherwise), the
RFC822 size of files without ``,W=``, the ``\\Recent`` watermark and modseq, and cached blobs
(envelope, bodystructure) that IMAP puts there. It is a cache: if it is missing or unreadable it
is rebuilt from the files, and nothing in it is needed to keep UIDs (dovecot-uidlist does that).

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
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger("pymailsrv.store")

INDEX_FILE = "pymailsrv-index.sqlite"
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS msg (uid INTEGER PRIMARY KEY, idate REAL NOT NULL, vsize INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cache (uid INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                                  PRIMARY KEY (uid, key)) WITHOUT ROWID;
"""


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


class FolderIndex:
    def __init__(self, folder_path: str, uidvalidity: int) -> None:
        self.path = os.path.join(folder_path, INDEX_FILE)
        self.conn: sqlite3.Connection | None = None
        self.reader: sqlite3.Connection | None = None
        self._wait = True
        self._open(uidvalidity)

    def _open(self, uidvalidity: int) -> None:
        for attempt in range(2):
            try:
                conn = _connect(self.path)
                conn.executescript(_SCHEMA)
                row = conn.execute("SELECT value FROM meta WHERE key='uidvalidity'").fetchone()
                if row is not None and row[0] != uidvalidity:
                    conn.executescript("DELETE FROM msg; DELETE FROM cache; DELETE FROM meta;")
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('uidvalidity', ?)", (uidvalidity,))
                self.conn = conn
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
        self.conn.execute("PRAGMA busy_timeout=0")
        self._wait = False
        try:
            yield
        finally:
            self._wait = True
            if self.conn is not None:
                self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _write(self, fill: Callable[[sqlite3.Connection], object]) -> None:
        """One transaction; errors are logged (it is a cache), except IndexBusy in ``nowait``."""
        if self.conn is None:
            return
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                fill(self.conn)
        except sqlite3.OperationalError as exc:
            if not self._wait and exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise IndexBusy(self.path) from exc
            log.warning("index %s: %s", self.path, exc)
        except sqlite3.Error as exc:
            log.warning("index %s: %s", self.path, exc)

    def _run(self, sql: str, args: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        if self.conn is None:
            return []
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
            self._write(lambda c: c.executemany("INSERT OR REPLACE INTO msg VALUES (?, ?, ?)", rows))

    def delete(self, uids: list[int]) -> None:
        if not uids:
            return
        keys = [(u,) for u in uids]

        def fill(c: sqlite3.Connection) -> None:
            c.executemany("DELETE FROM msg WHERE uid=?", keys)
            c.executemany("DELETE FROM cache WHERE uid=?", keys)

        self._write(fill)

    def get_meta(self, key: str, default: int) -> int:
        rows = self._run("SELECT value FROM meta WHERE key=?", (key,))
        return int(rows[0][0]) if rows else default

    def set_meta(self, values: dict[str, int]) -> None:
        self._write(lambda c: c.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items()))

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
