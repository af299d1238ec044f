"""contrib/: the systemd unit passes systemd-analyze, and the logrotate file, run by the real
logrotate against a running server, rotates its log without losing a line."""

from __future__ import annotations

import getpass
import grp
import os
import shutil
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.app.server_process import ROOT, ServerProcess, write_config

CONTRIB = ROOT / "contrib"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (CONTRIB / "pymailsrv.service").read_text()
    unit = unit.replace("/usr/local/bin/pymailsrv", sys.executable).replace("User=pymailsrv", "User=root")
    unit = unit.replace("Group=pymailsrv", "Group=root")
    path = tmp_path / "pymailsrv.service"
    path.write_text(unit)
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert str(path) not in result.stderr, result.stderr  # no line about our unit: every key is known


@pytest.mark.skipif(shutil.which("logrotate") is None and not os.path.exists("/usr/sbin/logrotate"),
                    reason="logrotate not installed")
def test_logrotate_rotates_a_running_servers_log(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    log_file = tmp_path / "mail.log"
    conf = write_config(tmp_path, *tls_files, worker_processes="2", log_file=str(log_file))
    server = ServerProcess(conf)
    server.log_path = log_file
    server.start()
    try:
        time.sleep(2)  # the workers start
        command = f"env PYTHONPATH={ROOT} {sys.executable} -m pymailsrv"
        rules = (CONTRIB / "pymailsrv.logrotate").read_text()
        rules = rules.replace("/var/log/pymailsrv/mail.log", str(log_file))
        rules = rules.replace("/usr/local/bin/pymailsrv", command).replace("/etc/pymailsrv/pymailsrv.conf", str(conf))
        rules = rules.replace("create 0640 pymailsrv adm", f"create 0640 {getpass.getuser()} "
                                                            f"{grp.getgrgid(os.getgid()).gr_name}")
        (tmp_path / "logrotate.conf").write_text(rules)
        logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
        result = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "state"), str(tmp_path / "logrotate.conf")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "mail.log.1").exists()  # delaycompress: the newest rotation stays plain
        time.sleep(0.5)
        for _ in range(4):
            with smtplib.SMTP("127.0.0.1", server.ports["smtpd"], timeout=10) as s:
                s.ehlo("client.test")
        deadline = time.monotonic() + 20
        while log_file.read_text().count("disconnect from") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log_file.read_text().count("disconnect from") == 4
        assert "disconnect from" not in (tmp_path / "mail.log.1").read_text()
    finally:
        assert server.stop() == 0
