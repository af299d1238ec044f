"""Creating files durably with few thread hops: write, fsync, rename, fsync of the directory.

The write into the page cache is cheap and runs on the event loop; the fsyncs block and run in a
thread. A thread hop per system call costs more CPU than the write itself: every hop is a GIL
hand-off (with 20 SMTP sessions delivering to Maildirs, one hop per syscall cost 0.66 ms of CPU
per message). So the commits of concurrent writers are batched: a batch is one hop that does
every file's fsync and rename, then one fsync per distinct directory (a directory fsync that
starts after a rename makes that rename durable). A batch starts at once while fewer than
``parallel`` are running, so a lone writer waits only for its own fsyncs; requests made while
``parallel`` batches run form the next one (group commit).

A leaf module: the Maildir store and the queue's spool both create their files through it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass


@dataclass(slots=True)
class _Commit:
    fd: int  # written, still open: the batch closes it
    tmp: str
    final: str
    future: asyncio.Future[None]


INLINE_WRITE_MAX = 1 << 20  # bigger writes go to a thread (a page-cache copy of ~1 ms)


async def create(path: str, data: bytes, mode: int = 0o600) -> int:
    """``write_new`` on the loop for ordinary sizes, in a thread for big ones."""
    if len(data) <= INLINE_WRITE_MAX:
        return write_new(path, data, mode)
    return await asyncio.to_thread(write_new, path, data, mode)


def write_new(path: str, data: bytes, mode: int = 0o600) -> int:
    """Create ``path`` (it must not exist) and write ``data`` into it; returns the open fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    return fd


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _run_batch(batch: list[tuple[int, str, str]]) -> list[OSError | None]:
    """In a thread: fsync, close and rename each file, then fsync each target directory once."""
    errors: list[OSError | None] = []
    dirs: dict[str, list[int]] = {}
    for i, (fd, tmp, final) in enumerate(batch):
        error: OSError | None = None
        try:
            os.fsync(fd)
        except OSError as exc:
            error = exc
        finally:
            os.close(fd)
        if error is None:
            try:
                os.rename(tmp, final)
                dirs.setdefault(os.path.dirname(final), []).append(i)
            except OSError as exc:
                error = exc
        if error is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        errors.append(error)
    for path, members in dirs.items():
        try:
            fsync_dir(path)
        except OSError as exc:
            for i in members:
                errors[i] = exc
    return errors


class CommitBatcher:
    """Makes written files durable under their final names, in batches (see the module notes).
    With ``fsync`` False (tests, benchmarks that say so) a commit is just the rename."""

    def __init__(self, *, parallel: int = 4, fsync: bool = True) -> None:
        self.parallel = parallel
        self.fsync = fsync
        self._pending: list[_Commit] = []
        self._running = 0
        self._scheduled = False

    async def commit(self, fd: int, tmp: str, final: str) -> None:
        """Return once the file written to ``fd`` (closed here) is durable as ``final``; on error
        ``tmp`` is removed and the OSError raised."""
        if not self.fsync:
            os.close(fd)
            os.rename(tmp, final)
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append(_Commit(fd, tmp, final, future))
        if not self._scheduled and self._running < self.parallel:
            self._scheduled = True
            loop.call_soon(self._start)  # commits requested in this loop iteration share the batch
        await future

    def _start(self) -> None:
        self._scheduled = False
        if not self._pending or self._running >= self.parallel:
            return
        batch, self._pending = self._pending, []
        self._running += 1
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(None, _run_batch, [(c.fd, c.tmp, c.final) for c in batch])
        done.add_done_callback(lambda f: self._finish(batch, f))

    def _finish(self, batch: list[_Commit], done: asyncio.Future[list[OSError | None]]) -> None:
        self._running -= 1
        try:
            errors = done.result()
        except BaseException as exc:  # the thread itself failed: nothing is known to be durable
            errors = [exc if isinstance(exc, OSError) else OSError(str(exc))] * len(batch)
        for commit, error in zip(batch, errors, strict=True):
            if commit.future.done():
                continue
            if error is None:
                commit.future.set_result(None)
            else:
                commit.future.set_exception(error)
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)
