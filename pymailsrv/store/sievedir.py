"""A user's Sieve scripts, kept as Dovecot Pigeonhole keeps them, so a user moving from Dovecot
keeps every script and Dovecot could read ours: ``sieve/NAME.sieve`` in the user's home (here
the Maildir root, Dovecot's ``home`` in PostfixAdmin's setups) and the active one a symbolic
link ``.dovecot.sieve`` -> ``sieve/NAME.sieve`` beside it (Pigeonhole's ``sieve =
file:~/sieve;active=~/.dovecot.sieve``). The Maildir store does not list either as a folder
(not a directory / not a dot-name).

Implementation notes:

* Writes are atomic: a script is written to ``sieve/tmp/``, fsynced and renamed over the old one;
  the active link is replaced by a rename of a new link, so a delivery reading the active script
  sees the old or the new one, never a part.
* Names (RFC 5804 §1.6): UTF-8, no control characters, no U+2028/U+2029; here also no ``/`` and
  not starting with ``.``, at most 255 bytes with ``.sieve`` (a file name).
* Blocking: every method does file I/O; callers on an event loop run them in a thread.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass

from pymailsrv.durable import fsync_dir

SCRIPT_DIR = "sieve"
ACTIVE_LINK = ".dovecot.sieve"
SUFFIX = ".sieve"
MAX_NAME_BYTES = 255 - len(SUFFIX)


class ScriptError(Exception):
    """A refused script operation; ``code`` is the ManageSieve response code (RFC 5804 §1.3)."""

    def __init__(self, text: str, code: str = "") -> None:
        super().__init__(text)
        self.text = text
        self.code = code


@dataclass(frozen=True, slots=True)
class Quota:
    max_scripts: int = 0  # 0: no limit
    max_storage: int = 0  # bytes of all scripts together; 0: no limit
    max_script_size: int = 1 << 20


def check_name(name: str) -> str:
    """The name if it is a valid script name (RFC 5804 §1.6 plus file-name rules); else ScriptError."""
    if not name:
        raise ScriptError("Script name is empty.")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ScriptError("Script name is too long.")
    if "/" in name or name.startswith("."):
        raise ScriptError("Script name contains invalid characters.")
    for ch in name:
        if unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029":
            raise ScriptError("Script name contains invalid characters.")
    return name


def active_script_path(home: str) -> str:
    """The path a delivery reads the user's active script from (may not exist)."""
    return os.path.join(home, ACTIVE_LINK)


class SieveDir:
    """The scripts of one user whose home is ``home`` (the Maildir root)."""

    def __init__(self, home: str, quota: Quota | None = None) -> None:
        self.home = home
        self.dir = os.path.join(home, SCRIPT_DIR)
        self.link = os.path.join(home, ACTIVE_LINK)
        self.quota = quota or Quota()

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, check_name(name) + SUFFIX)

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(e[: -len(SUFFIX)] for e in entries
                      if e.endswith(SUFFIX) and not e.startswith(".") and os.path.isfile(os.path.join(self.dir, e)))

    def active(self) -> str | None:
        """The name the active link points to, if it points to one of our scripts."""
        try:
            target = os.readlink(self.link)
        except OSError:
            return None
        head, base = os.path.split(target)
        if os.path.normpath(os.path.join(self.home, head)) != os.path.normpath(self.dir) or not base.endswith(SUFFIX):
            return None
        name = base[: -len(SUFFIX)]
        return name if os.path.isfile(os.path.join(self.dir, base)) else None

    def list(self) -> list[tuple[str, bool]]:
        active = self.active()
        return [(n, n == active) for n in self.names()]

    def get(self, name: str) -> bytes:
        try:
            with open(self._path(name), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise ScriptError("Script does not exist.", "NONEXISTENT") from None

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def check_space(self, name: str, size: int) -> None:
        """RFC 5804 §2.5 HAVESPACE: may a script ``name`` of ``size`` bytes be stored (replacing one
        of that name)? Raises ScriptError with QUOTA/MAXSIZE or QUOTA/MAXSCRIPTS."""
        check_name(name)
        q = self.quota
        if size > q.max_script_size:
            raise ScriptError("Script is too large.", "QUOTA/MAXSIZE")
        sizes = {n: os.path.getsize(os.path.join(self.dir, n + SUFFIX)) for n in self.names()}
        if q.max_scripts and name not in sizes and len(sizes) >= q.max_scripts:
            raise ScriptError("Too many scripts.", "QUOTA/MAXSCRIPTS")
        if q.max_storage and sum(sizes.values()) - sizes.get(name, 0) + size > q.max_storage:
            raise ScriptError("Not enough space for the script.", "QUOTA/MAXSIZE")

    def put(self, name: str, data: bytes) -> None:
        self.check_space(name, len(data))
        tmpdir = os.path.join(self.dir, "tmp")
        os.makedirs(tmpdir, mode=0o700, exist_ok=True)
        tmp = os.path.join(tmpdir, f"{os.getpid()}.{id(data):x}{SUFFIX}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._path(name))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        fsync_dir(self.dir)

    def delete(self, name: str) -> None:
        if not self.exists(name):
            raise ScriptError("Script does not exist.", "NONEXISTENT")
        if self.active() == name:
            raise ScriptError("Active script cannot be deleted.", "ACTIVE")  # RFC 5804 §2.10
        os.unlink(self._path(name))
        fsync_dir(self.dir)

    def rename(self, old: str, new: str) -> None:
        if not self.exists(old):
            raise ScriptError("Script does not exist.", "NONEXISTENT")
        if self.exists(new):
            raise ScriptError("A script with that name already exists.", "ALREADYEXISTS")
        was_active = self.active() == old
        os.rename(self._path(old), self._path(new))
        fsync_dir(self.dir)
        if was_active:
            self._link(new)

    def set_active(self, name: str) -> None:
        """RFC 5804 §2.8: activate ``name``; "" deactivates whatever is active."""
        if not name:
            if os.path.islink(self.link):
                os.unlink(self.link)
                fsync_dir(self.home)
            return
        if not self.exists(name):
            raise ScriptError("Script does not exist.", "NONEXISTENT")
        self._link(name)

    def _link(self, name: str) -> None:
        if os.path.exists(self.link) and not os.path.islink(self.link):
            # a regular .dovecot.sieve (a hand-made script): never overwritten silently
            raise ScriptError("The active script is a file, not a link; ask the administrator.")
        tmp = f"{self.link}.{os.getpid()}.tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.join(SCRIPT_DIR, name + SUFFIX), tmp)
        os.replace(tmp, self.link)
        fsync_dir(self.home)
