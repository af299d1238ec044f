"""Interoperability with the real postgrey (Debian's postgrey 1.37) through check_policy_service:
first delivery attempt greylisted with 450, the retry after --delay accepted with postgrey's
X-Greylist header. Skipped where postgrey is not installed."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import EngineFactory, smtp_state

POSTGREY = shutil.which("postgrey") or "/usr/sbin/postgrey"
pytestmark = pytest.mark.skipif(not Path(POSTGREY).exists(), reason="postgrey is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def postgrey(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen([POSTGREY, f"--inet=127.0.0.1:{port}", f"--dbdir={tmp_path}", "--delay=1",
                             "--user=root", "--group=root", f"--pidfile={tmp_path}/pid"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.skip("postgrey did not start")
                import time

                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_greylisting_with_postgrey(postgrey: int, make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_recipient_restrictions=f"reject_unauth_destination, "
                                                      f"check_policy_service inet:127.0.0.1:{postgrey}")
    state = smtp_state(client_address="192.0.2.44", client_name="mail.sender.example", sender="a@sender.example",
                       recipient="alice@example.com")
    try:
        first = await engine.check("rcpt", state)
        # postgrey answers "DEFER_IF_PERMIT 4.2.0 Greylisted, see ...", and Postfix logs exactly this
        assert first.reply().startswith("450 4.2.0 <alice@example.com>: Recipient address rejected: Greylisted, see ")
        await asyncio.sleep(2.2)
        retry = await engine.check("rcpt", state)
        assert not retry.refused, retry.reply()
        assert retry.effects and retry.effects[0][0] == "prepend"
        assert retry.effects[0][1].startswith("X-Greylist: delayed ")
    finally:
        await engine.close()
