"""Metrics and the statistics page of a real ``pymailsrv serve`` with two worker processes.

SMTP sessions at once (until both workers have taken some), IMAP and POP3 logins, a rejected and
a greylisted recipient; then the metrics are scraped over HTTP: the counts of every worker in one
scrape, after a reload the old workers' counts with the new ones', after a worker is killed its
restart and what it had reported. The statistics page is
loaded in a real headless Chromium (Debian's chromium through Playwright): it asks for
credentials (401 without) and shows the SVG graphs with the counts. The server is restarted and
the counts are still there, on the page and in ``pymailsrv stats``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import imaplib
import os
import poplib
import re
import shutil
import signal
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pymailsrv.cli import main
from tests.app.server_process import ServerProcess, cli, write_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SESSIONS = 8
BROWSER_TIMEOUT_MS = 120_000  # a loaded 2-core machine starts Chromium slowly
ADMIN, ADMIN_PASSWORD = "admin@example.test", "Adm1n-secret"
SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')
RETIRED = re.compile(r"worker process \d+ retired")
SMTP_PID = re.compile(r"pymailsrv/smtpd\[(\d+)\]: connect from")


def _configure(tmp_path: Path, tls_files: tuple[str, str]) -> Path:
    conf = write_config(
        tmp_path, *tls_files, worker_processes="2", metrics_listen="127.0.0.1:0", stats_listen="127.0.0.1:0",
        auth_failure_delay="0", smtpd_restriction_classes="greylisting", greylisting="check_greylist",
        smtpd_recipient_restrictions="check_recipient_access inline:{ grey@example.test=greylisting }, "
                                     "permit_mynetworks, reject_unauth_destination")
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    assert main(["--config", str(conf), "domain", "add", "example.test"]) == 0
    assert main(["--config", str(conf), "mailbox", "add", "alice@example.test", "--password", "pw"]) == 0
    asyncio.run(_add_superadmin(conf))
    return conf


async def _add_superadmin(conf: Path) -> None:
    from pymailsrv.auth import pacrypt
    from pymailsrv.config.settings import Settings
    from pymailsrv.db.web_admins import WebAdmins

    settings = Settings.load(str(conf))
    admins = WebAdmins(settings.get_str("database_url"))
    try:
        await admins.add_superadmin(ADMIN, pacrypt.from_settings(settings).hash(ADMIN_PASSWORD))
    finally:
        await admins.close()


def _start(conf: Path) -> ServerProcess:
    server = ServerProcess(conf).start(expect=("smtpd", "imap", "metrics", "stats"))
    _wait(lambda: _scrape(server).get(("pymailsrv_worker_processes", (("state", "serving"),)), 0) == 2, server)
    return server


@pytest.fixture
def server(tmp_path: Path, tls_files: tuple[str, str]) -> Iterator[ServerProcess]:
    srv = _start(_configure(tmp_path, tls_files))
    yield srv
    srv.stop()


def _wait(cond: Callable[[], bool], server: ServerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(server.text()[-4000:])
        time.sleep(0.1)


def _scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name and sorted labels -> value, from the text exposition."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['metrics']}/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        body = resp.read().decode()
    out = {}
    for line in body.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            out[(m.group(1), tuple(sorted(LABEL.findall(m.group(2) or ""))))] = float(m.group(3))
    return out


def _value(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))


def _session(server: ServerProcess) -> None:
    """One message to alice, with an unknown recipient (550) beside her."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtpd"], timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail("bob@example.org")
        assert client.rcpt("alice@example.test")[0] == 250
        assert client.rcpt("nobody@example.test")[0] == 550
        assert client.data(b"Subject: counted\r\n\r\nhello\r\n")[0] == 250


def _mail(server: ServerProcess, *, both_workers: bool = False) -> int:
    """A session with a greylisted recipient (450), then rounds of SESSIONS sessions at once
    (sequential ones tend to land on the worker that served the last) until both workers have
    served some, if asked; how many messages were sent."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtpd"], timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail("bob@example.org")
        assert client.rcpt("grey@example.test")[0] == 450
    sent = 0
    for _ in range(20):
        with concurrent.futures.ThreadPoolExecutor(SESSIONS) as pool:
            for future in [pool.submit(_session, server) for _ in range(SESSIONS)]:
                future.result()
        sent += SESSIONS
        if not both_workers or len(set(SMTP_PID.findall(server.text()))) >= 2:
            return sent
    raise AssertionError(f"every session landed on one worker: {set(SMTP_PID.findall(server.text()))}")


def _imap(server: ServerProcess) -> None:
    with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30) as imap:
        imap.login("alice@example.test", "pw")
        imap.select("INBOX")
        imap.logout()
    with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30) as imap, pytest.raises(imaplib.IMAP4.error):
        imap.login("alice@example.test", "wrong")
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    pop.user("alice@example.test")
    pop.pass_("pw")
    assert pop.stat()[0] >= 1
    pop.quit()


def test_one_scrape_counts_every_worker(server: ServerProcess) -> None:
    sent = _mail(server, both_workers=True)
    _imap(server)

    def counted() -> bool:
        m = _scrape(server)
        return (_value(m, "pymailsrv_messages_received_total", origin="smtpd") == sent
                and _value(m, "pymailsrv_auth_total", service="imap", result="failure") == 1
                and _value(m, "pymailsrv_connections_total", protocol="pop3") == 1
                and _value(m, "pymailsrv_commands_total", protocol="smtp", command="quit") == sent + 1)
    _wait(counted, server)
    m = _scrape(server)
    assert _value(m, "pymailsrv_connections_total", protocol="smtp") == sent + 1
    assert _value(m, "pymailsrv_connections_total", protocol="imap") == 2
    assert _value(m, "pymailsrv_commands_total", protocol="smtp", command="rcpt") == 2 * sent + 1
    assert _value(m, "pymailsrv_commands_total", protocol="imap", command="SELECT") == 1
    assert _value(m, "pymailsrv_auth_total", service="imap", mechanism="LOGIN", result="success") == 1
    assert _value(m, "pymailsrv_auth_total", service="pop3", mechanism="USER", result="success") == 1
    assert _value(m, "pymailsrv_commands_total", protocol="pop3", command="STAT") == 1
    assert _value(m, "pymailsrv_deliveries_total", transport="virtual", status="sent") == sent
    assert _value(m, "pymailsrv_delivery_duration_seconds_count", transport="virtual") == sent
    assert _value(m, "pymailsrv_delivery_delay_seconds_bucket", transport="virtual", le="+Inf") == sent
    assert _value(m, "pymailsrv_smtpd_rejects_total", stage="rcpt", reason="smtpd_reject_unlisted_recipient",
                  action="reject") == sent
    assert _value(m, "pymailsrv_smtpd_rejects_total", stage="rcpt", reason="check_greylist", action="defer") == 1
    assert _value(m, "pymailsrv_sessions", protocol="smtp") == 0
    assert _value(m, "pymailsrv_queue_messages", state="deferred") == 0
    assert _value(m, "pymailsrv_worker_up") == 2

    # a reload: new workers (slots 3 and 4) serve, the old ones retire; nothing counted is lost
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    _wait(lambda: len(RETIRED.findall(server.text())) == 2, server)
    more = _mail(server)
    _wait(lambda: _value(_scrape(server), "pymailsrv_messages_received_total") == sent + more, server)
    _wait(lambda: _value(_scrape(server), "pymailsrv_worker_processes", state="retiring") == 0, server)
    m = _scrape(server)
    assert _value(m, "pymailsrv_deliveries_total", status="sent") == sent + more
    assert _value(m, "pymailsrv_smtpd_rejects_total", reason="check_greylist") == 2
    assert _value(m, "pymailsrv_auth_total", service="imap") == 2
    assert {ls for (n, ls), v in m.items() if n == "pymailsrv_worker_up" and v == 1} == {
        (("slot", "3"),), (("slot", "4"),)}
    ages = {ls: v for (n, ls), v in m.items() if n == "pymailsrv_worker_report_age_seconds"}
    assert set(ages) == {(("slot", "3"),), (("slot", "4"),)} and all(0 <= age < 15 for age in ages.values())

    # a worker killed: restarted, counted as such, and what it had reported stays
    pid = int(re.findall(r"\[(\d+)\]: worker process 3 serving", server.text())[-1])
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: _value(_scrape(server), "pymailsrv_worker_restarts_total", slot="3") == 1
          and _value(_scrape(server), "pymailsrv_worker_up", slot="3") == 1, server)
    assert _value(_scrape(server), "pymailsrv_messages_received_total") == sent + more


def _page_text(page: object, selector: str) -> str:
    return str(page.locator(selector).text_content()).strip()  # type: ignore[attr-defined]


def _refused(browser: Any, url: str, credentials: dict[str, str] | None) -> None:
    """The page asks for credentials: 401 with a Basic challenge. Without credentials to give,
    or with wrong ones, Chromium may end the navigation with ERR_INVALID_AUTH_CREDENTIALS rather
    than show the 401 page: what counts is what the server answered."""
    page = browser.new_context(http_credentials=credentials).new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    answers: list[Any] = []
    page.on("response", lambda response: answers.append(response))
    try:
        page.goto(url)
    except Exception as exc:
        assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
    assert answers and all(r.status == 401 for r in answers), [r.status for r in answers]
    assert answers[-1].headers["www-authenticate"].startswith('Basic realm="pymailsrv statistics"')
    page.context.close()


def _check_page(server: ServerProcess, sent: int) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    url = f"http://127.0.0.1:{server.ports['stats']}/"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], timeout=BROWSER_TIMEOUT_MS)
        try:
            for credentials in (None, {"username": ADMIN, "password": "nope"}):
                _refused(browser, url, credentials)
            page = browser.new_context(http_credentials={"username": ADMIN, "password": ADMIN_PASSWORD}).new_page()
            page.set_default_timeout(BROWSER_TIMEOUT_MS)
            response = page.goto(url)
            assert response is not None and response.status == 200
            assert page.title() == "Mail statistics for mx.example.test"
            assert page.locator("svg.graph").count() == 8  # traffic and problems, for 4 periods
            for period in ("day", "week", "month", "year"):
                assert page.locator(f"#traffic-{period}").is_visible()
                assert _page_text(page, f'#traffic-{period} text.legend[data-series="received"]') == \
                    f"received {sent}"
                assert _page_text(page, f'#traffic-{period} text.legend[data-series="sent"]') == f"sent {sent}"
                assert _page_text(page, f'#problems-{period} text.legend[data-series="rejected"]') == \
                    f"rejected {sent}"
                assert _page_text(page, f'#problems-{period} text.legend[data-series="greylisted"]') == \
                    "greylisted 1"
                assert _page_text(page, f"#total-{period}-received") == str(sent)
            assert page.locator('#traffic-day polyline[data-series="received"]').count() == 1
            assert _page_text(page, "#queue-deferred") == "0"
        finally:
            browser.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_statistics_page_in_chromium_survives_a_restart(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    conf = _configure(tmp_path, tls_files)
    server = _start(conf)
    try:
        sent = _mail(server)
        _wait(lambda: _value(_scrape(server), "pymailsrv_deliveries_total", status="sent") == sent, server)
        _check_page(server, sent)
    finally:
        assert server.stop() == 0
    report = cli(conf, "stats")
    assert report.returncode == 0, report.stderr
    received = next(line for line in report.stdout.splitlines() if line.startswith("received"))
    assert received.split()[1:5] == [str(sent)] * 4, report.stdout
    server.log_path.rename(server.log_path.with_suffix(".1"))  # the new process's ports, not the old ones
    server = _start(conf)  # the counts are kept: a new process shows them
    try:
        m = _scrape(server)
        assert _value(m, "pymailsrv_messages_received_total") == 0  # Prometheus counters start again
        _check_page(server, sent)
    finally:
        server.stop()


def test_one_process_serves_its_own_metrics(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    """worker_processes = 0: the main process counts and serves; no worker metrics; no page
    without stats_listen."""
    conf = write_config(tmp_path, *tls_files, worker_processes="0", metrics_listen="127.0.0.1:0")
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    assert main(["--config", str(conf), "domain", "add", "example.test"]) == 0
    assert main(["--config", str(conf), "mailbox", "add", "alice@example.test", "--password", "pw"]) == 0
    server = ServerProcess(conf).start(expect=("smtpd", "metrics"))
    try:
        _session(server)
        m = _scrape(server)
        assert _value(m, "pymailsrv_messages_received_total") == 1
        assert _value(m, "pymailsrv_deliveries_total", status="sent") == 1
        assert not any(name.startswith("pymailsrv_worker") for name, _ in m)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{server.ports['metrics']}/other", timeout=10)
        assert missing.value.code == 404
        assert "stats" not in server.ports
    finally:
        assert server.stop() == 0
