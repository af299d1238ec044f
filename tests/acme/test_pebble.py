"""ACME against Pebble (Let's Encrypt's test CA) and a real ``pymailsrv serve``: the main process
obtains a certificate for $myhostname and $acme_domains by HTTP-01 or TLS-ALPN-01, every
listener and worker serves it without a restart (checked by a client that verifies the chain
against Pebble's root over real TLS to SMTP, IMAP and POP3), ``cert renew`` replaces it,
``cert revoke`` revokes it at the CA and the server gets a new one; a failed validation backs
off (doubling) and is recorded, the old certificate still served.

Pebble resolves the names through the test's DNS responder (127.0.0.1) and validates on the
ports the server's acme_http_listen / acme_tls_listen use."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pymailsrv.acme.service import AcmeService
from pymailsrv.clock import FakeClock
from pymailsrv.config.settings import Settings
from tests.acme.pebble import PEBBLE, Pebble, free_port
from tests.app.server_process import ServerProcess, cli, write_config
from tests.dns_responder import DnsResponder, in_thread
from tests.tls_client import common_name, peer_certificate, tls_connect

pytestmark = pytest.mark.skipif(not os.path.exists(PEBBLE), reason="pebble is not installed (Debian package pebble)")

HOSTNAME = "mx.example.test"  # write_config's myhostname
EXTRA = "imap.example.test"


@pytest.fixture
def dns() -> Iterator[DnsResponder]:
    with in_thread() as responder:
        for name in (HOSTNAME, EXTRA):
            responder.add(name, "A", "127.0.0.1")
        yield responder


def _start(tmp_path: Path, tls_files: tuple[str, str], dns: DnsResponder, *, challenge: str,
           workers: int) -> tuple[Pebble, ServerProcess]:
    port = free_port()
    pebble = Pebble(tmp_path / "pebble", dns_port=dns.port, http_port=port, tls_port=port).start()
    listen = {"acme_http_listen": f"127.0.0.1:{port}" if challenge == "http" else "",
              "acme_tls_listen": f"127.0.0.1:{port}" if challenge == "tls" else ""}
    conf = write_config(tmp_path, *tls_files, acme_directory_url=pebble.directory_url, acme_ca_file=pebble.api_cert,
                        acme_domains=EXTRA, worker_processes=str(workers), **listen)
    assert cli(conf, "db", "upgrade").returncode == 0
    try:
        return pebble, ServerProcess(conf).start()
    except BaseException:
        pebble.stop()
        raise


def _served_serial(server: ServerProcess, service: str, name: str, root: str) -> str:
    """The serial of the certificate ``service`` serves for ``name``, verified against ``root``
    and the name (raises ssl.SSLCertVerificationError otherwise)."""
    with tls_connect(server.ports[service], service, name, ssl.create_default_context(cadata=root)) as tls:
        return f"{peer_certificate(tls).serial_number:x}"


def _wait_served(server: ServerProcess, root: str, services: tuple[str, ...], *, not_serial: str = "",
                 timeout: float = 60.0) -> str:
    """Wait until every service serves one Pebble-issued certificate (other than ``not_serial``)
    for both names; its serial."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            serials = {_served_serial(server, service, name, root)
                       for service in services for name in (HOSTNAME, EXTRA)}
            if len(serials) == 1 and not_serial not in serials:
                return serials.pop()
        except ssl.SSLCertVerificationError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(server.text()[-5000:])
        time.sleep(0.3)


def _state(tmp_path: Path) -> dict[str, float]:
    return dict(json.loads((tmp_path / "data" / "acme" / "state.json").read_text()))


def test_issue_renew_revoke_by_http01_with_workers(tmp_path: Path, tls_files: tuple[str, str],
                                                   dns: DnsResponder) -> None:
    pebble, server = _start(tmp_path, tls_files, dns, challenge="http", workers=2)
    try:
        root = pebble.root_pem()
        first = _wait_served(server, root, ("smtpd", "smtps", "imap", "imaps", "pop3", "pop3s"))
        log = server.text()
        assert re.search(r"acme-http listening on 127\.0\.0\.1:\d+", log)
        assert f"certificate for {HOSTNAME}, {EXTRA} installed: serial {first}" in log and "reload -- version" in log
        acme = tmp_path / "data" / "acme"
        assert stat.S_IMODE(acme.stat().st_mode) == 0o700
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in acme.iterdir()} == {
            "account-key.pem": 0o600, "certificate.pem": 0o600, "state.json": 0o600}
        status = cli(server.config, "cert", "status")
        assert status.returncode == 0, status.stderr
        assert f"names: {HOSTNAME}, {EXTRA}" in status.stdout and "Pebble Intermediate CA" in status.stdout
        assert f"serial {first}" in status.stdout
        assert "tls_cert_file (not served: the ACME certificate is)" in status.stdout

        renewed = cli(server.config, "cert", "renew")
        assert renewed.returncode == 0, renewed.stdout + renewed.stderr
        second = re.search(r"renewed: serial ([0-9a-f]+)", renewed.stdout).group(1)  # type: ignore[union-attr]
        assert second != first
        assert _wait_served(server, root, ("smtpd", "imaps", "pop3"), not_serial=first) == second

        revoked = cli(server.config, "cert", "revoke", "--reason", "superseded")
        assert revoked.returncode == 0, revoked.stdout + revoked.stderr
        assert f"revoked: serial {second}" in revoked.stdout
        assert pebble.cert_status(second) == "Revoked"
        third = _wait_served(server, root, ("submission", "imap", "pop3s"), not_serial=second)
        assert third not in (first, second) and pebble.cert_status(third) == "Valid"
        assert (acme / "certificate.pem.revoked").exists()
    finally:
        assert server.stop() == 0
        pebble.stop()


def test_tls_alpn01_in_one_process(tmp_path: Path, tls_files: tuple[str, str], dns: DnsResponder) -> None:
    pebble, server = _start(tmp_path, tls_files, dns, challenge="tls", workers=0)
    try:
        _wait_served(server, pebble.root_pem(), ("smtps", "imaps", "pop3s"))
        assert re.search(r"acme-tls listening on 127\.0\.0\.1:\d+", server.text())
        assert f"{HOSTNAME}: answering tls-alpn-01" in server.text()
    finally:
        assert server.stop() == 0
        pebble.stop()


def test_failed_validation_backs_off_and_the_old_certificate_stays(tmp_path: Path, tls_files: tuple[str, str],
                                                                    dns: DnsResponder) -> None:
    dns.exists.discard(EXTRA)
    dns.records.pop((EXTRA, "A"))  # the CA cannot find imap.example.test
    pebble, server = _start(tmp_path, tls_files, dns, challenge="http", workers=0)
    try:
        deadline = time.monotonic() + 60
        while "(failure 1 in a row)" not in server.text() or not (tmp_path / "data/acme/state.json").exists():
            assert time.monotonic() < deadline, server.text()[-5000:]  # logged, then written
            time.sleep(0.2)
        state = _state(tmp_path)
        assert state["failures"] == 1 and EXTRA in str(state["last_error"])
        assert state["next_attempt"] - state["last_attempt"] == pytest.approx(600)  # acme_minimal_backoff_time
        with tls_connect(server.ports["imaps"], "imaps", HOSTNAME) as tls:
            assert common_name(peer_certificate(tls)) == "localhost"  # tls_cert_file, still
        status = cli(server.config, "cert", "status").stdout
        assert "last attempt:" in status and "failed (1 in a row)" in status and "next attempt:" in status

        again = cli(server.config, "cert", "renew")
        assert again.returncode == 1 and "renewal failed:" in again.stdout and EXTRA in again.stdout
        state = _state(tmp_path)
        assert state["failures"] == 2 and state["next_attempt"] - state["last_attempt"] == pytest.approx(1200)

        dns.add(EXTRA, "A", "127.0.0.1")
        fixed = cli(server.config, "cert", "renew")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert _state(tmp_path)["failures"] == 0
        _wait_served(server, pebble.root_pem(), ("smtpd", "imaps"))
    finally:
        assert server.stop() == 0
        pebble.stop()


async def test_renews_by_itself_thirty_days_before_expiry(tmp_path: Path, dns: DnsResponder) -> None:
    """The main process's schedule on an injected clock: nothing happens until 30 days before
    the certificate (Pebble's: five years) expires, then a new one is installed and the
    listeners are told (``on_installed``: the reload)."""
    port = free_port()
    pebble = Pebble(tmp_path / "pebble", dns_port=dns.port, http_port=port).start()
    clock = FakeClock(start=time.time())
    installed: list[str] = []
    settings = Settings({"myhostname": HOSTNAME, "acme_domains": EXTRA, "data_directory": str(tmp_path / "data"),
                         "acme_directory_url": pebble.directory_url, "acme_ca_file": pebble.api_cert,
                         "acme_http_listen": f"127.0.0.1:{port}"})
    service = await AcmeService.start(settings, lambda: installed.append(_serial(service)), clock=clock)
    assert service is not None
    try:
        await _until(lambda: len(installed) == 1)
        first = service.store.certificate()
        assert first is not None and first.covers([HOSTNAME, EXTRA])
        await clock.advance(first.not_after - 30 * 86400 - clock.time() - 60)  # a minute before it is due
        await asyncio.sleep(1)
        assert len(installed) == 1
        await clock.advance(120)
        await _until(lambda: len(installed) == 2)
        assert installed[1] != installed[0] and pebble.cert_status(installed[1]) == "Valid"
    finally:
        await service.stop()
        pebble.stop()


def _serial(service: AcmeService) -> str:
    cert = service.store.certificate()
    return cert.serial_hex() if cert else ""


async def _until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


def test_renew_without_a_running_server_answers_itself(tmp_path: Path, tls_files: tuple[str, str],
                                                       dns: DnsResponder) -> None:
    port = free_port()
    pebble = Pebble(tmp_path / "pebble", dns_port=dns.port, http_port=port).start()
    try:
        conf = write_config(tmp_path, *tls_files, acme_directory_url=pebble.directory_url,
                            acme_ca_file=pebble.api_cert, acme_http_listen=f"127.0.0.1:{port}")
        result = cli(conf, "cert", "renew")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "pymailsrv is not running: answering the challenges from this process" in result.stdout
        assert "renewed: serial" in result.stdout
        assert (tmp_path / "data" / "acme" / "certificate.pem").exists()
    finally:
        pebble.stop()


def test_cert_commands_without_acme(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    conf = write_config(tmp_path, *tls_files)
    status = cli(conf, "cert", "status")
    assert status.returncode == 0 and "ACME: off" in status.stdout and "tls_cert_file (served):" in status.stdout
    assert "names: localhost" in status.stdout and "(self-signed)" in status.stdout
    for action in ("renew", "revoke"):
        result = cli(conf, "cert", action)
        assert result.returncode == 1 and "ACME is off: set acme_directory_url" in result.stderr
