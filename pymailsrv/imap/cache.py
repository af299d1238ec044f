"""A process-wide, size-bounded LRU of derived message data (header block, ENVELOPE,
BODYSTRUCTURE) in front of ``Mailbox.cache_get`` (which may cost a database query).

A message's content never changes for a given (folder, UIDVALIDITY, UID), so entries never go
stale; eviction is by total size only. Pure.
"""

from __future__ import annotations

from collections import OrderedDict

Key = tuple[str, str, int, int, str]  # (user, folder, uidvalidity, uid, what)


class ContentCache:
    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._d: OrderedDict[Key, bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> bytes | None:
        value = self._d.get(key)
        if value is None:
            self.misses += 1
            return None
        self._d.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Key, value: bytes) -> None:
        if len(value) > self.max_bytes // 16:
            return
        old = self._d.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._d[key] = value
        self.size += len(value)
        while self.size > self.max_bytes and self._d:
            _k, v = self._d.popitem(last=False)
            self.size -= len(v)

    def __len__(self) -> int:
        return len(self._d)
