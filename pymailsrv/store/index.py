"""The per-folder index and cache (``pymailsrv-index.sqlite`` in the folder directory).

It holds what a Maildir file name does not say: internal dates (a stat per file otherwise), the
RFC822 size of files without ``,W=``, the ``\\Recent`` watermark and modseq, and cached blobs
(envelope, bodystructure) that IMAP puts there. It is a cache: if it is missing or unreadable it
is rebuilt from the files, and nothing in it is needed to keep UIDs (dovecot-uidlist does that).

Blocking; each Folder uses it from threads under the folder's lock, except ``cache_get`` which
uses a separate read connection on the event loop (a point query on a WAL database never waits
for a writer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("pymailsrv.store")

INDEX_FILE = "pymailsrv-index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS msg (uid INTEGER PRIMARY KEY, idate REAL NOT NULL, vsize INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cache (uid INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                                  PRIMARY KEY (uid, key)) WITHOUT ROWID;
"""


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
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
        if self.conn is None or not rows:
            return
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.executemany("INSERT OR REPLACE INTO msg VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:
            log.warning("index %s: %s", self.path, exc)

    def delete(self, uids: list[int]) -> None:
        if self.conn is None or not uids:
            return
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.executemany("DELETE FROM msg WHERE uid=?", [(u,) for u in uids])
                self.conn.executemany("DELETE FROM cache WHERE uid=?", [(u,) for u in uids])
        except sqlite3.Error as exc:
            log.warning("index %s: %s", self.path, exc)

    def get_meta(self, key: str, default: int) -> int:
        rows = self._run("SELECT value FROM meta WHERE key=?", (key,))
        return int(rows[0][0]) if rows else default

    def set_meta(self, key: str, value: int) -> None:
        self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def cache_put(self, rows: list[tuple[int, str, bytes]]) -> None:
        if self.conn is None or not rows:
            return
        try:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.executemany("INSERT OR REPLACE INTO cache VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:
            log.warning("index %s: %s", self.path, exc)

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
