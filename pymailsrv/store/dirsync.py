"""Group commit for directory fsyncs.

Twenty SMTP sessions delivering into one Maildir each need ``new/`` fsynced after their rename.
One fsync started after a rename makes that rename durable, so concurrent callers share it: a
caller waits for an fsync that *began* after its own request, and whoever finds none running
starts one covering every request made so far. Called from worker threads.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass


@dataclass
class _State:
    requested: int = 0  # requests made so far (each after its caller's rename)
    covered: int = 0  # requests a finished fsync covers
    running: bool = False


class DirSyncer:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._dirs: dict[str, _State] = {}

    def sync(self, path: str) -> None:
        """Return once an fsync of ``path`` that started after this call has finished."""
        with self._cond:
            state = self._dirs.setdefault(path, _State())
            state.requested += 1
            mine = state.requested
            while state.covered < mine:
                if state.running:
                    self._cond.wait()
                    continue
                state.running = True
                target = state.requested
                self._cond.release()
                try:
                    fsync_dir(path)
                finally:
                    self._cond.acquire()
                    state.running = False
                    self._cond.notify_all()
                state.covered = max(state.covered, target)
            if not state.running and state.covered == state.requested and len(self._dirs) > 1024:
                del self._dirs[path]


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
