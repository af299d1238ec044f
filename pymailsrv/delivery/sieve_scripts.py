"""Where a delivery's Sieve scripts come from, compiled once per file version, and the small
per-user record of what ``duplicate`` and ``vacation`` have seen.

Implementation notes:
- A compiled script is cached by the file's identity (device, inode, size, mtime in ns): an edit
  or a ManageSieve upload (a new file renamed into place) is a new identity, so it is compiled
  again; nothing has to invalidate the cache. A script that does not compile is cached as its
  error; each delivery it would have filtered logs it and keeps the message (RFC 5228 §2.10.6).
- The user's active script is ``.dovecot.sieve`` in the Maildir root (a link into ``sieve/``,
  store.sievedir), personal includes are ``sieve/NAME.sieve``, global ones
  ``$sieve_global/NAME.sieve``; ``sieve_before``/``sieve_after`` name files or directories.
- The seen-record (``.pymailsrv-sieve-seen`` beside the script, as Pigeonhole's
  ``.dovecot.lda-dupes``) maps a hashed id to its expiry; it is small and pruned on each write,
  and replaced atomically.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from pymailsrv.log import get_logger
from pymailsrv.sieve import Script, SieveError, compile_script
from pymailsrv.store.sievedir import ACTIVE_LINK, SCRIPT_DIR, SUFFIX

log = get_logger("sieve")

SEEN_FILE = ".pymailsrv-sieve-seen"
MAX_SEEN = 10_000  # entries kept per user; the oldest go first


@dataclass(frozen=True, slots=True)
class Loaded:
    path: str
    script: Script | None
    error: SieveError | None = None


class NotCached(Exception):
    pass


class ScriptCache:
    """Compiled scripts by file identity (bounded LRU). Blocking: call from a thread or accept
    a stat per lookup (a cached script costs one ``stat``)."""

    def __init__(self, extensions: Iterable[str] | None = None, size: int = 1000) -> None:
        self.extensions = list(extensions) if extensions is not None else None
        self.size = size
        self._cache: OrderedDict[tuple[int, int, int, int], Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self.compiled = 0  # how many compilations ran (tests and the bench read it)

    def load(self, path: str, *, compile: bool = True) -> Loaded | None:
        """The script at path (following links), or None when there is none. Without
        ``compile``, a script not in the cache raises NotCached (so the caller can go to a
        thread for the read and the compilation and stay on its loop for a hit)."""
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:  # the loop and a compiling thread share the cache
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        if not compile:
            raise NotCached(path)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except FileNotFoundError:
            return None
        self.compiled += 1
        real = os.path.realpath(path)  # .dovecot.sieve names sieve/NAME.sieve: say which
        name = os.path.basename(real).removesuffix(SUFFIX)
        try:
            loaded = Loaded(real, compile_script(text, self.extensions, name=name))
        except SieveError as exc:
            loaded = Loaded(real, None, exc)
        with self._lock:
            self._cache[key] = loaded
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return loaded


def script_files(specs: Iterable[str]) -> list[str]:
    """sieve_before/sieve_after items: a file, or a directory's *.sieve files in name order."""
    out: list[str] = []
    for spec in specs:
        if os.path.isdir(spec):
            out += [os.path.join(spec, n) for n in sorted(os.listdir(spec)) if n.endswith(SUFFIX)]
        else:
            out.append(spec)
    return out


def user_script_path(home: str) -> str:
    return os.path.join(home, ACTIVE_LINK)


def include_path(home: str, global_dir: str, location: str, name: str) -> str | None:
    if "/" in name or name.startswith("."):
        return None
    if location == "global":
        return os.path.join(global_dir, name + SUFFIX) if global_dir else None
    return os.path.join(home, SCRIPT_DIR, name + SUFFIX)


class SeenRecord:
    """What a user's scripts have seen: ``duplicate`` ids and vacation (handle, sender) pairs."""

    def __init__(self, home: str, now: float | None = None, *, load: bool = True) -> None:
        self.path = os.path.join(home, SEEN_FILE)
        self.now = time.time() if now is None else now
        self.entries: dict[str, float] = {}
        self.changed = False
        self.loaded = load
        if not load:
            return
        try:
            with open(self.path, encoding="ascii") as f:
                data = json.load(f)
            if isinstance(data, dict):
                self.entries = {str(k): float(v) for k, v in data.items() if float(v) > self.now}
        except (FileNotFoundError, ValueError, TypeError, OSError):
            self.entries = {}

    def seen(self, key: str) -> bool:
        return self.entries.get(key, 0.0) > self.now

    def mark(self, key: str, seconds: float, *, extend: bool = True) -> None:
        """Remember key for seconds; without ``extend`` an unexpired entry keeps its expiry."""
        if not extend and self.seen(key):
            return
        self.entries[key] = self.now + seconds
        self.changed = True

    def save(self) -> None:
        if not self.changed or not self.loaded:  # never overwrite a record that was not read
            return
        keep = sorted(self.entries.items(), key=lambda kv: kv[1])[-MAX_SEEN:]
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="ascii") as f:
                json.dump(dict(keep), f)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("sieve: cannot write %s: %s", self.path, exc.strerror)
