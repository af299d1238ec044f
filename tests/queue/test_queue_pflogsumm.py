"""Our log lines, read back by pflogsumm (Debian package pflogsumm; skipped when absent)."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest
from qfakes import MSG, ScriptedAgents, envelope

from pymailsrv.log import PostfixFormatter

pytestmark = pytest.mark.skipif(shutil.which("pflogsumm") is None, reason="pflogsumm not installed")


async def test_pflogsumm_counts_our_lines(harness, tmp_path):
    logfile = tmp_path / "mail.log"
    handler = logging.FileHandler(logfile)
    handler.setFormatter(PostfixFormatter("pymailsrv", "mx"))
    root = logging.getLogger("pymailsrv")
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    agents = ScriptedAgents("sent")
    agents.answers["later@remote.test"] = ("deferred", "4.4.1", "connect to remote.test[192.0.2.1]:25: refused")
    agents.answers["gone@remote.test"] = ("bounced", "5.1.1", "host x said: 550 5.1.1 unknown")
    agents.answers["s@example.test"] = ("sent", "2.0.0", "ok")
    try:
        async with harness(agents) as h:
            for rcpt in ("a@remote.test", "b@remote.test", "later@remote.test", "gone@remote.test"):
                await h.manager.submit(envelope("s@example.test", rcpt), MSG)
            await h.manager.wait_idle()
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
        handler.close()
    out = subprocess.run(["pflogsumm", "--syslog-name=pymailsrv", "--no_no_msg_size", str(logfile)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit() and parts[1] in ("delivered", "deferred", "bounced"):
            counts[parts[1]] = int(parts[0])
    assert counts == {"delivered": 3, "deferred": 1, "bounced": 1}, out
