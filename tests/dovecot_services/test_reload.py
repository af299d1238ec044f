"""A reload (SIGHUP) of ``pymailsrv serve``: new LMTP and quota-status connections get the new
settings, an LMTP session in progress finishes on what it began with."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from tests.app.server_process import ServerProcess
from tests.dovecot_services.conftest import QUOTA, ROWS, fill
from tests.dovecot_services.test_quota_status import ask, request
from tests.fakes import LineClient


def greeting(port: int) -> str:
    c = LineClient(port)
    line = c.line().decode()
    c.close()
    return line


def test_reload_applies_to_new_connections(tmp_path: Path) -> None:
    from pymailsrv.db import schema

    url = f"sqlite+aiosqlite:///{tmp_path}/pymailsrv.db"

    async def seed() -> None:
        await schema.create_schema(url)
        await schema.seed(url, ROWS)

    asyncio.run(seed())
    fill(tmp_path / "vmail", "full", QUOTA)
    base = (f"myhostname = mx.example.test\ndata_directory = {tmp_path}/data\ndatabase_url = {url}\n"
            f"virtual_mailbox_base = {tmp_path}/vmail\nworker_processes = 0\nlmtp_listen = 127.0.0.1:0\n"
            f"quota_status_listen = 127.0.0.1:0\n")
    conf = tmp_path / "pymailsrv.conf"
    conf.write_text(base)
    server = ServerProcess(conf).start(expect=("lmtp", "status"))
    try:
        lmtp, quota = server.ports["lmtp"], server.ports["status"]
        assert greeting(lmtp) == "220 mx.example.test pymailsrv ready."
        before = LineClient(lmtp)  # a session begun before the reload
        before.expect("220 *")
        conf.write_text(base + "login_greeting = LMTP here.\nquota_status_overquota = DEFER_IF_PERMIT full\n")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while greeting(lmtp) != "220 mx.example.test LMTP here.":
            assert time.monotonic() < deadline, server.text()
            time.sleep(0.1)
        assert ask(quota, request("full@example.com")) == ["action=DEFER_IF_PERMIT full"]
        before.send("LHLO a.example")  # still served, on the settings it began with
        before.expect("250-mx.example.test")
        before.close()
        assert "restart pymailsrv" not in server.text()
    finally:
        assert server.stop() == 0
