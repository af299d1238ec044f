from __future__ import annotations

import argparse
import io
import os

import pytest
from qfakes import MSG, ScriptedAgents, envelope

from pymailsrv.queue.admin import cli, mailq
from pymailsrv.queue.control import serve_control
from pymailsrv.queue.spool import FileSpool


def ns(action: str, qid: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(action=action, queue_id=qid)


async def run(settings, action, qid=None) -> tuple[int, str]:
    out = io.StringIO()
    rc = await cli(settings, ns(action, qid), out=out)
    return rc, out.getvalue()


async def test_list_stopped_spool(qsettings, clock, tmp_path):
    settings = qsettings()
    spool = FileSpool(settings.get_str("queue_directory"), clock)
    assert mailq(spool) == "Mail queue is empty\n"
    qid = await spool.put(envelope("s@example.test", "x@remote.test", "y@remote.test"), MSG)
    await spool.append(qid, "active", [{"k": "r", "i": 0, "to": "x@remote.test", "s": "deferred", "d": "4.4.1",
                                        "t": "connect to remote.test[192.0.2.1]:25: Connection timed out"}])
    await spool.move(qid, "active", "deferred")
    qid2 = await spool.put(envelope("", "pm@example.test"), b"x" * 3000, state="hold")
    rc, text = await run(settings, "list")
    lines = text.splitlines()
    assert rc == 0
    assert lines[0].startswith("-Queue ID-")
    assert lines[1].startswith(f"{qid}  ") and lines[1].endswith("  s@example.test")
    assert f"{len(MSG):>8}" in lines[1]
    assert lines[2].strip() == "(connect to remote.test[192.0.2.1]:25: Connection timed out)"
    assert lines[3].strip() == "x@remote.test" and lines[4].strip() == "y@remote.test"
    assert lines[6].startswith(f"{qid2}!") and lines[6].endswith("MAILER-DAEMON")
    assert lines[-1] == "-- 4 Kbytes in 2 Requests."


async def test_commands_on_stopped_spool(qsettings, clock):
    settings = qsettings()
    spool = FileSpool(settings.get_str("queue_directory"), clock)
    a = await spool.put(envelope("s@x.test", "r@y.test"), MSG)
    b = await spool.put(envelope("s@x.test", "r@y.test"), MSG)
    await spool.move(b, "active", "deferred")
    assert await run(settings, "hold", a) == (0, "1 message(s) placed on hold\n")
    assert spool.locate(a) == "hold"
    assert await run(settings, "release", a) == (0, "1 message(s) released from hold\n")
    assert spool.locate(a) == "active"
    assert await run(settings, "flush") == (0, "1 message(s) scheduled for delivery\n")
    assert spool.locate(b) == "active"
    assert await run(settings, "requeue", b) == (0, "1 message(s) requeued\n")
    assert (await run(settings, "delete", "00000000000000"))[0] == 1
    assert await run(settings, "delete", a) == (0, "1 message(s) deleted\n")
    assert await run(settings, "delete", "ALL") == (0, "1 message(s) deleted\n")
    assert spool.locate(b) is None


@pytest.mark.parametrize("long_path", [False, True])
async def test_commands_on_running_manager_via_socket(harness, clock, tmp_path, long_path):
    agents = ScriptedAgents("deferred")
    params = {"queue_directory": str(tmp_path / ("q" * 120 if long_path else "q"))}
    async with harness(agents, **params) as h:
        path = os.path.join(h.settings.get_str("queue_directory"), "qmgr.sock")
        server = await serve_control(h.manager, path)
        try:
            qid = await h.manager.submit(envelope("s@example.test", "x@remote.test"), MSG)
            await h.manager.wait_idle()
            assert await run(h.settings, "hold", qid) == (0, "1 message(s) placed on hold\n")
            assert h.manager.entries[qid].state == "hold"
            agents.default = "sent"
            assert await run(h.settings, "release", qid) == (0, "1 message(s) released from hold\n")
            await h.manager.wait_idle()
            assert qid not in h.manager.entries and len(agents.calls) == 2
            agents.default = "deferred"
            qid = await h.manager.submit(envelope("s@example.test", "x@remote.test"), MSG)
            await h.manager.wait_idle()
            _rc, text = await run(h.settings, "list")
            assert qid in text and "(scripted)" in text
            assert await run(h.settings, "flush", qid) == (0, "1 message(s) scheduled for delivery\n")
            await h.manager.wait_idle()
            assert len(agents.calls) == 4
            assert await run(h.settings, "delete", qid) == (0, "1 message(s) deleted\n")
            assert not h.manager.entries
        finally:
            server.close()


async def test_no_queue_directory_yet(qsettings, tmp_path):
    settings = qsettings(queue_directory=str(tmp_path / "nothing"))
    assert await run(settings, "list") == (0, "Mail queue is empty\n")
    assert (await run(settings, "flush"))[0] == 1
    assert not (tmp_path / "nothing").exists()
