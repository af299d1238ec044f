"""Reading Postfix table source files: logical lines and reload-on-change (pure helpers + a stat)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from pymailsrv.errors import ConfigError

log = logging.getLogger("pymailsrv.policy")

T = TypeVar("T")


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Postfix table syntax: blank lines and lines whose first non-blank character is ``#`` are
    ignored; a line that starts with white space continues the previous logical line."""
    out: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0] in " \t" and out:
            start, prev = out[-1]
            out[-1] = (start, f"{prev} {stripped}")
            continue
        out.append((number, stripped))
    return out


class ReloadingSource(Generic[T]):
    """A parsed file that is parsed again when its mtime (or size) changes.

    ``check_interval`` bounds how often the file is stat()ed; 0 checks on every lookup."""

    def __init__(self, path: str, parse: Callable[[str, str], T], check_interval: float = 1.0) -> None:
        self.path = path
        self._parse = parse
        self._interval = check_interval
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._value: T = self._load(initial=True)

    def _stat(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size)

    def _load(self, *, initial: bool = False) -> T:
        try:
            stamp = self._stat()
            with open(self.path, encoding="utf-8", errors="surrogateescape") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot open table {self.path}: {exc.strerror}") from None
        value = self._parse(text, self.path)
        self._stamp = stamp
        return value

    def get(self) -> T:
        now = time.monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            try:
                stamp = self._stat()
            except OSError:
                return self._value  # keep serving the last good copy, as Postfix keeps its open map
            if stamp != self._stamp:
                try:
                    self._value = self._load()
                except ConfigError as exc:
                    self._stamp = stamp  # warn once per change, keep serving the last good copy
                    log.warning("%s; keeping the previous contents of %s", exc, self.path)
        return self._value
