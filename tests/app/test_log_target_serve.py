"""A real ``pymailsrv serve`` with worker processes logging to syslog and to journald: the main
process's lines and each worker's (under its own pid) reach the socket the test binds, a
syslog daemon's or journald's."""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.app.server_process import ROOT, write_config
from tests.log_receivers import Receiver, journal, unix_syslog

SYSLOG_LINE = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d [\d:]{8} pymailsrv/([\w-]+)\[(\d+)\]: (.*)$", re.S)
LISTENING = re.compile(r"^smtpd listening on 127\.0\.0\.1:(\d+)$")

Line = tuple[str, int, str]  # (program, pid, message)


def _syslog_lines(items: list[bytes]) -> list[Line]:
    lines = []
    for item in items:
        m = SYSLOG_LINE.match(item.decode())
        assert m, item
        lines.append((m.group(2), int(m.group(3)), m.group(4)))
    return lines


def _journal_lines(items: list[dict[str, str]]) -> list[Line]:
    return [(f["SYSLOG_IDENTIFIER"].removeprefix("pymailsrv/"), int(f["SYSLOG_PID"]), f["MESSAGE"]) for f in items]


@pytest.fixture(params=["syslog", "journald"])
def target(request: pytest.FixtureRequest) -> Iterator[tuple[dict[str, str], Receiver, Callable[[list], list[Line]]]]:  # type: ignore[type-arg]
    if request.param == "syslog":
        with unix_syslog() as (path, received):
            yield {"log_target": "syslog", "syslog_address": path}, received, _syslog_lines
    else:
        with journal() as (path, received):
            yield {"log_target": "journald", "journald_socket": path}, received, _journal_lines


def test_main_process_and_workers_log_to_the_target(
    tmp_path: Path, tls_files: tuple[str, str],
    target: tuple[dict[str, str], Receiver, Callable[[list], list[Line]]],  # type: ignore[type-arg]
) -> None:
    params, received, parse = target
    conf = write_config(tmp_path, *tls_files, worker_processes="2", **params)
    output = tmp_path / "output"
    with open(output, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pymailsrv", "--config", str(conf), "serve"],
                                stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        def started(items: list) -> bool:  # type: ignore[type-arg]
            lines = parse(items)
            return (any(m.startswith("daemon started") for _, _, m in lines)
                    and sum("worker process" in m and "serving" in m for _, _, m in lines) == 2)

        lines = parse(received.wait_for(started, timeout=90))
        port = next(int(m.group(1)) for m in (LISTENING.match(msg) for _, _, msg in lines) if m)
        workers = {pid for _, pid, msg in lines if "worker process" in msg and "serving" in msg}
        assert proc.pid not in workers and len(workers) == 2
        assert any(pid == proc.pid and msg.startswith("daemon started") for _, pid, msg in lines)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("client.example.test")
        lines = parse(received.wait_for(
            lambda items: any(m.startswith("disconnect from") for _, _, m in parse(items))))
        connects = [(program, pid) for program, pid, msg in lines if msg.startswith("connect from")]
        assert len(connects) == 1 and connects[0][0] == "smtpd" and connects[0][1] in workers
    finally:
        proc.terminate()
        proc.wait(30)
    assert "pymailsrv/" not in output.read_text()  # nothing went to standard error instead
