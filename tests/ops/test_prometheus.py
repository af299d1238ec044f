"""A real Prometheus (Debian's prometheus, started by the test on loopback with its own
configuration and storage) scrapes ``metrics_listen`` of a ``pymailsrv serve`` with two worker
processes; its query API then gives the counts the test produced."""

from __future__ import annotations

import json
import shutil
import smtplib
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymailsrv.cli import main
from tests.app.server_process import ServerProcess, write_config

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian package) is not installed")
MESSAGES = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mail_server(tmp_path: Path, tls_files: tuple[str, str]) -> Iterator[ServerProcess]:
    conf = write_config(tmp_path, *tls_files, worker_processes="2", metrics_listen="127.0.0.1:0")
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    assert main(["--config", str(conf), "domain", "add", "example.test"]) == 0
    assert main(["--config", str(conf), "mailbox", "add", "alice@example.test", "--password", "pw"]) == 0
    server = ServerProcess(conf).start(expect=("smtpd", "metrics"))
    yield server
    server.stop()


@pytest.fixture
def prometheus(tmp_path: Path, mail_server: ServerProcess) -> Iterator[str]:
    """Prometheus scraping the server every second; its base URL."""
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                      "  - job_name: pymailsrv\n    static_configs:\n"
                      f"      - targets: ['127.0.0.1:{mail_server.ports['metrics']}']\n")
    assert PROMETHEUS is not None
    log = (tmp_path / "prometheus.log").open("wb")
    for _ in range(3):  # the port was free a moment ago; another process may have taken it since
        port = _free_port()
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        if proc.poll() is None:
            break
    else:
        pytest.fail((tmp_path / "prometheus.log").read_text())
    yield url
    proc.terminate()
    proc.wait(30)
    log.close()


def _query(url: str, expr: str) -> float | None:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=10) as r:
        data = json.load(r)["data"]["result"]
    return float(data[0]["value"][1]) if data else None


def _until(url: str, expr: str, want: float, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = _query(url, expr)
        if got == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"{expr} = {got}, not {want}")


def test_prometheus_scrapes_every_workers_counts(mail_server: ServerProcess, prometheus: str) -> None:
    for _ in range(MESSAGES):
        with smtplib.SMTP("127.0.0.1", mail_server.ports["smtpd"], timeout=30) as client:
            client.sendmail("bob@example.org", ["alice@example.test"], b"Subject: scraped\r\n\r\nhi\r\n")
    _until(prometheus, 'sum(pymailsrv_messages_received_total{job="pymailsrv"})', MESSAGES)
    _until(prometheus, 'sum(pymailsrv_deliveries_total{status="sent"})', MESSAGES)
    _until(prometheus, "sum(pymailsrv_worker_up)", 2)
    _until(prometheus, 'up{job="pymailsrv"}', 1)
    _until(prometheus, 'sum(pymailsrv_delivery_delay_seconds_count{transport="virtual"})', MESSAGES)
