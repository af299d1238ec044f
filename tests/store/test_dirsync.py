"""Group commit of directory fsyncs: every caller returns after an fsync that started after its
call, and concurrent callers share fsyncs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pymailsrv.store import dirsync


def test_concurrent_callers_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[float] = []
    real = dirsync.fsync_dir

    def slow_fsync(path: str) -> None:
        started.append(time.monotonic())
        time.sleep(0.02)
        real(path)

    monkeypatch.setattr(dirsync, "fsync_dir", slow_fsync)
    syncer = dirsync.DirSyncer()
    calls: list[tuple[float, float]] = []

    def caller() -> None:
        t = time.monotonic()
        syncer.sync(str(tmp_path))
        calls.append((t, time.monotonic()))

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 20
    assert 1 <= len(started) < 20
    for called, returned in calls:  # some fsync began after the call and ended before the return
        assert any(called <= s and s + 0.02 <= returned + 1e-3 for s in started)


def test_error_propagates_and_next_call_retries(tmp_path: Path) -> None:
    syncer = dirsync.DirSyncer()
    with pytest.raises(FileNotFoundError):
        syncer.sync(str(tmp_path / "missing"))
    syncer.sync(str(tmp_path))
