from __future__ import annotations

import asyncio
import logging
import os

import pytest
from qfakes import MSG, envelope

from pymailsrv.queue.base import Recipient
from pymailsrv.queue.spool import CorruptFile, FileSpool, encode_file, parse_file


async def test_put_writes_one_file_in_active_and_nothing_in_incoming(tmp_path, clock):
    spool = FileSpool(str(tmp_path), clock)
    env = envelope("s@a.test", "r1@b.test", "r2@b.test", sasl_username="s@a.test", dsn_ret="HDRS")
    env.recipients[0].notify = ("FAILURE", "DELAY")
    env.recipients[0].orcpt = "rfc822;R1@b.test"
    qid = await spool.put(env, MSG)
    assert os.listdir(tmp_path / "active") == [qid]
    assert os.listdir(tmp_path / "incoming") == []
    qf = spool.load(qid, "active")
    assert qf.envelope == env
    assert spool.read_content(qf) == MSG
    assert qf.size == len(MSG)


async def test_ids_are_unique_and_sortable(tmp_path, clock):
    spool = FileSpool(str(tmp_path), clock)
    ids = await asyncio.gather(*(spool.put(envelope("", "r@b.test"), b"x") for _ in range(50)))
    assert len(set(ids)) == 50
    assert sorted(ids) == sorted(os.listdir(tmp_path / "active"))
    a, b = spool.new_id(), spool.new_id()
    assert a < b and len(a) == 14


async def test_status_records_and_torn_tail(tmp_path, clock):
    spool = FileSpool(str(tmp_path), clock)
    qid = await spool.put(envelope("s@a.test", "r1@b.test", "r2@b.test"), MSG)
    await spool.append(qid, "active", [{"k": "r", "i": 0, "to": "r1@b.test", "s": "sent", "d": "2.0.0",
                                        "t": "ok"}])
    await spool.append(qid, "active", [{"k": "a", "n": 1, "next": 123.0}])
    with open(tmp_path / "active" / qid, "ab") as fh:
        fh.write(b'{"k":"r","i":1,"to":"r2@b.te')  # a crash in the middle of a record
    qf = spool.load(qid, "active")
    assert set(qf.done) == {(0, "r1@b.test")}
    assert qf.attempts == 1 and qf.next_attempt == 123.0
    assert spool.read_content(qf) == MSG


@pytest.mark.parametrize("data", [b"", b"garbage", b"PYMQ1 10 5\n{}", b"PYMQ1 2 3\n{}\nab",
                                  b"PYMQ1 2 0\n{}\n", b"PYMQ1 x y\n"])
def test_parse_rejects_corrupt(data):
    with pytest.raises(CorruptFile):
        parse_file("0000000000ABCD", "active", data)


def test_parse_roundtrip_with_records():
    env = envelope("s@a.test", "r@b.test")
    data = encode_file(env, MSG, [{"k": "w"}])
    qf = parse_file("0000000000ABCD", "deferred", data)
    assert qf.warned and qf.envelope.recipients == [Recipient("r@b.test")]


async def test_scan_quarantines_corrupt_and_cleans_incoming(tmp_path, clock, caplog):
    spool = FileSpool(str(tmp_path), clock)
    good = await spool.put(envelope("s@a.test", "r@b.test"), MSG)
    (tmp_path / "deferred" / "0000000000BAD0").write_bytes(b"PYMQ1 999 1\n{")
    (tmp_path / "incoming" / "0000000000AAAA").write_bytes(b"half a message")
    caplog.set_level(logging.INFO, logger="pymailsrv")
    assert spool.clean_incoming() == 1
    found = [qf.queue_id for qf in spool.scan()]
    assert found == [good]
    assert os.listdir(tmp_path / "corrupt") == ["0000000000BAD0"]
    assert "0000000000BAD0: corrupt queue file" in caplog.text


async def test_move_and_locate(tmp_path, clock):
    spool = FileSpool(str(tmp_path), clock)
    qid = await spool.put(envelope("s@a.test", "r@b.test"), MSG)
    await spool.move(qid, "active", "hold", durable=True)
    assert spool.locate(qid) == "hold"
    assert spool.locate("../etc/passwd") is None
    spool.remove(qid, "hold")
    assert spool.locate(qid) is None


async def test_put_failure_is_temporary(tmp_path, clock):
    from pymailsrv.errors import TemporaryFailure
    spool = FileSpool(str(tmp_path), clock)
    os.rmdir(tmp_path / "active")
    (tmp_path / "active").write_text("not a dir")
    with pytest.raises(TemporaryFailure):
        await spool.put(envelope("s@a.test", "r@b.test"), MSG)
    assert os.listdir(tmp_path / "incoming") == []


async def test_directory_fsyncs_are_shared_by_concurrent_puts(tmp_path, clock, monkeypatch):
    import time

    from pymailsrv import durable

    calls = []
    real = durable._run_batch

    def slow_batch(batch):  # one flush of the directory (or the filesystem) per batch
        calls.append(len(batch))
        time.sleep(0.02)
        return real(batch)

    monkeypatch.setattr(durable, "_run_batch", slow_batch)
    spool = FileSpool(str(tmp_path), clock)
    ids = await asyncio.gather(*(spool.put(envelope("s@a.test", "r@b.test"), MSG) for _ in range(60)))
    assert len(set(ids)) == 60 and sum(calls) == 60
    assert 1 <= len(calls) <= 15  # group commit: far fewer directory fsyncs than messages
