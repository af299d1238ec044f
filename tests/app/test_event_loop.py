"""``event_loop``: ``pymailsrv serve`` on uvloop and on asyncio's own loop, as a real process with a
worker: SMTP with STARTTLS (a worker's inherited listener), IMAP over implicit TLS and with STARTTLS,
POP3 with STLS (connections the main process passes to the worker), a reload (SIGHUP) and a log
reopen (SIGUSR1); the startup lines name the loop that runs (asyncio unless configured: uvloop did
not pay, issue 12). ``choose`` picks the loop."""

from __future__ import annotations

import imaplib
import poplib
import re
import signal
import smtplib
import ssl
import sys
import time
from pathlib import Path

import pytest

from pymailsrv import eventloop
from pymailsrv.cli import main
from pymailsrv.errors import ConfigError
from tests.app.server_process import ServerProcess, write_config

PASSWORD = "s3cret-pass"


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _wait_for(server: ServerProcess, pattern: str, count: int = 1, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.findall(pattern, server.text(), re.M)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {count} x {pattern!r} in:\n{server.text()}")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_each_loop_serves_every_protocol_with_a_worker(loop: str, tmp_path: Path,
                                                       tls_files: tuple[str, str]) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")  # the optional extra pymailsrv[uvloop]; in the dev dependencies
    conf = write_config(tmp_path, *tls_files, event_loop=loop, worker_processes="1")
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    assert main(["--config", str(conf), "domain", "add", "example.test"]) == 0
    assert main(["--config", str(conf), "mailbox", "add", "alice@example.test", "--password", PASSWORD]) == 0
    server = ServerProcess(conf).start()
    try:
        assert f"daemon started -- version 0.1.0, data directory {tmp_path / 'data'}, event loop {loop}" \
            in server.text()
        _wait_for(server, rf"worker process 1 serving .*, event loop {loop}$")
        _sessions(server, "first")
        server.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        _wait_for(server, rf"worker process 2 serving .*, event loop {loop}$")
        server.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        _sessions(server, "second")
    finally:
        assert server.stop() == 0
    text = server.text()
    assert "daemon stopped" in text and "Traceback" not in text


def _sessions(server: ServerProcess, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10) as smtp:
        smtp.starttls(context=_tls())
        smtp.login("alice@example.test", PASSWORD)
        smtp.sendmail("alice@example.test", ["alice@example.test"], f"Subject: {subject}\r\n\r\nhi\r\n".encode())
    deadline = time.monotonic() + 15
    while True:
        with imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=_tls(), timeout=10) as imap:
            imap.login("alice@example.test", PASSWORD)
            imap.select("INBOX")
            _, found = imap.search(None, "SUBJECT", subject)
        if found[0] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert found[0], f"the message {subject!r} did not arrive"
    with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10) as imap:
        imap.starttls(ssl_context=_tls())
        imap.login("alice@example.test", PASSWORD)
        assert imap.select("INBOX")[0] == "OK"
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10)
    try:
        pop.stls(context=_tls())
        pop.user("alice@example.test")
        pop.pass_(PASSWORD)
        assert pop.stat()[0] >= 1
    finally:
        pop.quit()


def test_the_default_is_asyncio(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    conf = write_config(tmp_path, *tls_files, worker_processes="0")
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    server = ServerProcess(conf).start()
    try:
        assert "event loop asyncio" in server.text()
    finally:
        assert server.stop() == 0


def test_choose() -> None:
    pytest.importorskip("uvloop")
    assert eventloop.choose("asyncio").name == "asyncio"
    assert eventloop.choose("asyncio").factory is None
    assert eventloop.choose("uvloop").name == "uvloop"
    assert eventloop.choose("auto").name == "uvloop"  # installed here
    assert eventloop.choose("uvloop").run(_running()) == "uvloop"
    assert eventloop.choose("asyncio").run(_running()) == "asyncio"
    with pytest.raises(ConfigError, match="not one of"):
        eventloop.choose("trio")


def test_choose_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as where it is not installed
    assert eventloop.choose("auto").name == "asyncio"
    with pytest.raises(ConfigError, match="cannot import uvloop"):
        eventloop.choose("uvloop")


async def _running() -> str:
    return eventloop.running()
