"""``texthash:``, ``hash:``, ``btree:``, ``lmdb:``: the key/value text source read directly.

Postfix compiles these with postmap; pymailsrv reads the text file the admin edits and re-reads it
when it changes, so ``postmap`` after an edit is harmless but no longer needed. Keys are case-folded
(postmap folds keys unless ``-f``); the first of duplicate keys wins, as postmap keeps it.
"""

from __future__ import annotations

import logging

from pymailsrv.errors import ConfigError
from pymailsrv.policy.tables.source import ReloadingSource, logical_lines

log = logging.getLogger("pymailsrv.policy")


def parse_hash(text: str, filename: str = "<string>") -> dict[str, str]:
    table: dict[str, str] = {}
    for number, line in logical_lines(text):
        parts = line.split(None, 1)
        key = parts[0].lower()
        value = parts[1].strip() if len(parts) > 1 else ""
        if key in table:
            log.warning("%s, line %d: duplicate entry: \"%s\"", filename, number, key)
            continue
        table[key] = value
    return table


class HashTable:
    """A text key/value table, reloaded when the file changes."""

    def __init__(self, path: str, *, check_interval: float = 1.0, type_name: str = "texthash") -> None:
        if not path:
            raise ConfigError(f"{type_name}: table needs a file name")
        self.type_name = type_name
        self._source = ReloadingSource(path, parse_hash, check_interval)

    async def get(self, key: str) -> str | None:
        return self._source.get().get(key.lower())

    def __repr__(self) -> str:
        return f"{self.type_name}:{self._source.path}"
