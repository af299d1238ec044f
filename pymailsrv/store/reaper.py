"""Unlinking expunged message files off the event loop.

Freeing a file's blocks waits for the filesystem journal: on a busy ext4 an ``unlink`` of a
message file takes milliseconds of wall time for ~50 µs of CPU, and on the event loop every
session of the process waits that long. An EXPUNGE on the loop therefore renames the file into
the folder's tmp/ (``expunged.<base>``: gone from cur/ at once, as the expunge requires) and
hands it to one reaper thread per process, fed through a queue (no thread hop back to the loop,
nobody waits for it). What a process that died left there is removed by the next process that
opens the folder (``sweep``), as Dovecot removes stale tmp/ files. A leaf module.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading

PREFIX = "expunged."
_DRAIN_TIMEOUT = 10.0

_queue: queue.SimpleQueue[list[str] | threading.Event] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()


def discard(paths: list[str]) -> None:
    """Unlink ``paths`` (files already renamed into tmp/) soon, in the reaper thread."""
    if paths:
        _ensure_thread()
        _queue.put(paths)


def tmp_name(folder_path: str, base: str) -> str:
    """Where an expunged message waits for the reaper."""
    return os.path.join(folder_path, "tmp", PREFIX + base)


def sweep(folder_path: str) -> int:
    """Remove expunged files from a folder's tmp/ (blocking: in a thread); how many went. Each
    is garbage from the moment it was renamed there: one that another process's reaper has
    queued just isn't there any more when that reaper gets to it."""
    tmp = os.path.join(folder_path, "tmp")
    removed = 0
    try:
        names = [n for n in os.listdir(tmp) if n.startswith(PREFIX)]
    except FileNotFoundError:
        return 0
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(tmp, name))
            removed += 1
    return removed


def drain(timeout: float = _DRAIN_TIMEOUT) -> None:
    """Wait until everything handed over so far is unlinked (shutdown, tests)."""
    if _thread is None:
        return
    done = threading.Event()
    _queue.put(done)  # set by the thread when it gets there
    done.wait(timeout)


def _ensure_thread() -> None:
    global _thread
    if _thread is not None:
        return
    with _start_lock:
        if _thread is None:
            t = threading.Thread(target=_run, name="pymailsrv-reaper", daemon=True)
            t.start()
            _thread = t
            atexit.register(drain)


def _forget_thread() -> None:
    """A forked child has no reaper thread (nor the parent's queue items): it starts its own."""
    global _thread, _queue
    _thread = None
    _queue = queue.SimpleQueue()


os.register_at_fork(after_in_child=_forget_thread)


def _run() -> None:
    while True:
        paths = _queue.get()
        if isinstance(paths, threading.Event):
            paths.set()
            continue
        for path in paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
