"""The commit batcher: every file is fsynced, renamed and its directory fsynced before its commit
returns; concurrent commits share thread hops and directory fsyncs; errors reach their writer."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pymailsrv import durable


def _calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    calls: list[tuple[str, object]] = []
    real_fsync, real_rename, real_syncfs = os.fsync, os.rename, durable._syncfs

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(a: str, b: str) -> None:
        calls.append(("rename", b))
        real_rename(a, b)

    def syncfs(fd: int) -> int:
        calls.append(("syncfs", None))
        assert real_syncfs is not None
        return real_syncfs(fd)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    monkeypatch.setattr(durable.os, "rename", rename)
    if real_syncfs is not None:
        monkeypatch.setattr(durable, "_syncfs", syncfs)
    return calls


def _durable_before_return(calls: list[tuple[str, object]], tmp: str, final: str) -> bool:
    """The file's data was flushed before its rename, and its new name after it."""
    mine = calls.index(("rename", final))
    data = ("fsync", tmp) in calls[:mine] or ("syncfs", None) in calls[:mine]
    name = ("fsync", os.path.dirname(final)) in calls[mine:] or ("syncfs", None) in calls[mine:]
    return data and name


def test_commit_order_file_fsync_rename_dir_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "new").mkdir()
    calls = _calls(monkeypatch)

    async def main() -> None:
        batcher = durable.CommitBatcher()
        fd = await durable.create(str(tmp_path / "tmp" / "m1"), b"hello")
        await batcher.commit(fd, str(tmp_path / "tmp" / "m1"), str(tmp_path / "new" / "m1"))

    asyncio.run(main())
    assert (tmp_path / "new" / "m1").read_bytes() == b"hello"
    assert not (tmp_path / "tmp" / "m1").exists()
    assert calls == [("fsync", str(tmp_path / "tmp" / "m1")), ("rename", str(tmp_path / "new" / "m1")),
                     ("fsync", str(tmp_path / "new"))]


def test_concurrent_commits_share_batches_and_flushes(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "new").mkdir()
    calls = _calls(monkeypatch)
    batches: list[int] = []
    real_run = durable._run_batch

    def run(batch: list[tuple[int, str, str]]) -> list[OSError | None]:
        batches.append(len(batch))
        return real_run(batch)

    monkeypatch.setattr(durable, "_run_batch", run)

    async def one(batcher: durable.CommitBatcher, i: int) -> None:
        tmp = str(tmp_path / "tmp" / f"m{i}")
        fd = await durable.create(tmp, b"x" * i)
        await batcher.commit(fd, tmp, str(tmp_path / "new" / f"m{i}"))
        assert _durable_before_return(calls, tmp, str(tmp_path / "new" / f"m{i}"))

    async def main() -> None:
        batcher = durable.CommitBatcher()
        await asyncio.gather(*(one(batcher, i) for i in range(50)))

    asyncio.run(main())
    assert sorted(os.listdir(tmp_path / "new")) == sorted(f"m{i}" for i in range(50))
    assert sum(batches) == 50 and len(batches) < 50
    flushes = sum(1 for c in calls if c[0] in ("fsync", "syncfs"))
    if durable._syncfs is not None:  # group commit: two flushes per batch however big, not per file
        assert flushes == 2 * len(batches) < 50


def test_a_failed_commit_raises_and_leaves_no_file(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()

    async def main() -> None:
        batcher = durable.CommitBatcher()
        tmp = str(tmp_path / "tmp" / "m")
        fd = await durable.create(tmp, b"data")
        with pytest.raises(FileNotFoundError):  # the target directory does not exist
            await batcher.commit(fd, tmp, str(tmp_path / "missing" / "m"))
        assert not os.path.exists(tmp)
        ok = str(tmp_path / "tmp" / "n")
        fd = await durable.create(ok, b"data")  # the batcher keeps working
        await batcher.commit(fd, ok, str(tmp_path / "n"))

    asyncio.run(main())
    assert (tmp_path / "n").read_bytes() == b"data"


def test_create_refuses_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        asyncio.run(durable.create(str(tmp_path / "f"), b"new"))
    assert (tmp_path / "f").read_bytes() == b"old"


def test_make_dirs_fsyncs_the_parent_of_each_directory_it_made_once(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "cur").mkdir()
    calls = _calls(monkeypatch)
    folder = tmp_path / "home" / ".Archive"
    made = durable.make_dirs(*(str(folder / sub) for sub in ("cur", "new", "tmp")))
    assert made == [str(folder), str(folder / "cur"), str(folder / "new"), str(folder / "tmp")]
    assert calls == [("fsync", str(tmp_path / "home")), ("fsync", str(folder))]
    calls.clear()
    assert durable.make_dirs(str(folder / "new"), str(tmp_path / "home" / "cur")) == []
    assert calls == [], "nothing made, nothing flushed"
    assert durable.make_dirs(str(tmp_path / "x" / "y"), fsync=False) == [str(tmp_path / "x"), str(tmp_path / "x" / "y")]
    assert calls == []
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FileExistsError):
        durable.make_dirs(str(tmp_path / "file"))


def test_inline_commit_runs_on_the_loop_in_the_same_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``inline_when`` true and nothing batched: fsync, rename, directory fsync without a thread;
    false: the batch in a thread, as before."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "new").mkdir()
    calls = _calls(monkeypatch)
    batches: list[int] = []
    real_run = durable._run_batch

    def run(batch: list[tuple[int, str, str]]) -> list[OSError | None]:
        batches.append(len(batch))
        return real_run(batch)

    monkeypatch.setattr(durable, "_run_batch", run)
    alone = [True]

    async def main() -> None:
        batcher = durable.CommitBatcher(inline_when=lambda: alone[0])
        for i, lone in enumerate((True, False)):
            alone[0] = lone
            tmp = str(tmp_path / "tmp" / f"m{i}")
            fd = await durable.create(tmp, b"hello")
            await batcher.commit(fd, tmp, str(tmp_path / "new" / f"m{i}"))
            assert _durable_before_return(calls, tmp, str(tmp_path / "new" / f"m{i}"))

    asyncio.run(main())
    assert batches == [1]  # only the second went to a thread
    assert calls[:3] == [("fsync", str(tmp_path / "tmp" / "m0")), ("rename", str(tmp_path / "new" / "m0")),
                         ("fsync", str(tmp_path / "new"))]
    assert sorted(os.listdir(tmp_path / "new")) == ["m0", "m1"]


def test_a_failed_inline_commit_raises_and_leaves_no_file(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()

    async def main() -> None:
        batcher = durable.CommitBatcher(inline_when=lambda: True)
        tmp = str(tmp_path / "tmp" / "m")
        fd = await durable.create(tmp, b"data")
        with pytest.raises(FileNotFoundError):
            await batcher.commit(fd, tmp, str(tmp_path / "missing" / "m"))
        assert not os.path.exists(tmp)

    asyncio.run(main())
