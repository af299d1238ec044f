"""Reads on the event loop only from the page cache: a file the disk would have to deliver, a
big one, or a kernel without RWF_NOWAIT gives None (the caller reads it in a thread)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pymailsrv import pagecache


def test_cached_file_read_whole(tmp_path: Path) -> None:
    p = tmp_path / "m"
    p.write_bytes(b"hello\n" * 1000)
    assert pagecache.read_cached(str(p)) == b"hello\n" * 1000
    (tmp_path / "empty").write_bytes(b"")
    assert pagecache.read_cached(str(tmp_path / "empty")) == b""


def test_big_file_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "m"
    p.write_bytes(b"x" * 100)
    assert pagecache.read_cached(str(p), max_size=99) is None
    with pytest.raises(FileNotFoundError):
        pagecache.read_cached(str(tmp_path / "gone"))


def test_file_not_in_the_page_cache(tmp_path: Path) -> None:
    p = tmp_path / "m"
    p.write_bytes(b"x" * 65536)
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    got = pagecache.read_cached(str(p))
    if got is not None:
        pytest.skip("this filesystem keeps the pages (tmpfs)")
    assert p.read_bytes() == b"x" * 65536  # a thread's plain read


def test_would_block_or_no_kernel_support(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "m"
    p.write_bytes(b"x")

    def eagain(*args: object) -> int:
        raise BlockingIOError

    monkeypatch.setattr(os, "preadv", eagain)
    assert pagecache.read_cached(str(p)) is None
    monkeypatch.setattr(pagecache, "_NOWAIT", None)
    assert pagecache.read_cached(str(p)) is None
