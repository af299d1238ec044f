"""``pymailsrv doctor`` against a real ``pymailsrv serve`` and a DNS responder on loopback
(``dns_nameservers`` points the doctor at it): what it says about the listeners, the control
socket, the database and each record, the records it prints to add, and its exit status."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.server_process import SERVICES, ServerProcess, cli, write_config
from tests.dns_responder import DnsResponder, in_thread

HOST = "mx.example.test"
ADDRESS = "192.0.2.10"
REVERSE = "10.2.0.192.in-addr.arpa"


def free_port() -> int:
    """A port free now: the doctor probes the configured port, so port 0 would not do."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsResponder]:
    with in_thread() as responder:
        yield responder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[str, str], dns: DnsResponder
           ) -> Iterator[tuple[Path, ServerProcess]]:
    tmp = tmp_path_factory.mktemp("doctor")
    listen = {f"{name}_listen": f"127.0.0.1:{free_port()}" for name in SERVICES}
    conf = write_config(tmp, *tls_files, worker_processes="0", dns_nameservers=f"127.0.0.1:{dns.port}",
                        myhostname=HOST, **listen)
    server = ServerProcess(conf).start(timeout=60)
    try:
        for domain in ("example.test", "example.net"):
            assert cli(conf, "domain", "add", domain).returncode == 0
        assert cli(conf, "domain", "add", "backup.example", "--backupmx").returncode == 0
        assert cli(conf, "alias-domain", "add", "example.net", "example.test").returncode == 0
        yield conf, server
    finally:
        server.stop()


def _records(dns: DnsResponder, records: dict[str, list[str]]) -> None:
    """Replace the responder's records with ``records`` (name → "TYPE value" strings)."""
    dns.records.clear()
    dns.exists.clear()
    for name, values in records.items():
        for value in values:
            rdtype, _, data = value.partition(" ")
            dns.add(name, rdtype, data)


def _doctor(conf: Path, *args: str) -> tuple[int, str]:
    result = cli(conf, "doctor", *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def _line(out: str, level: str, subject: str) -> str:
    """The finding about ``subject`` at ``level``, with the lines it prints beneath."""
    m = re.search(rf"^  {level}\s+{re.escape(subject)}\S*: .*(?:\n {{12}}.*)*", out, re.M)
    assert m, f"no {level} for {subject} in:\n{out}"
    return m.group(0)


GOOD = {
    HOST: [f"A {ADDRESS}"],
    REVERSE: [f"PTR {HOST}."],
    "example.test": [f"MX 10 {HOST}.", 'TXT "v=spf1 mx -all"'],
    "_dmarc.example.test": ['TXT "v=DMARC1; p=reject; rua=mailto:postmaster@example.test"'],
    "example.net": [f"MX 10 {HOST}."],
    "backup.example": ["MX 10 primary.backup.example.", f"MX 20 {HOST}."],
}


def test_all_published_and_serving(served: tuple[Path, ServerProcess], dns: DnsResponder) -> None:
    conf, _ = served
    _records(dns, GOOD)
    status, out = _doctor(conf)
    assert status == 0, out
    for service in SERVICES:
        assert re.search(rf"^  ok\s+{service} 127\.0\.0\.1:\d+: answers", out, re.M), out
    assert "over TLS" in _line(out, "ok", "imaps 127.0.0.1")
    _line(out, "ok", "queue manager")
    assert "schema at revision" in _line(out, "ok", "database sqlite")
    assert ADDRESS in _line(out, "ok", f"{HOST} A/AAAA")
    _line(out, "ok", f"PTR of {ADDRESS}")
    _line(out, "ok", "example.test MX")
    assert f"{ADDRESS} passes (mx in example.test)" in _line(out, "ok", "example.test SPF")
    _line(out, "ok", "example.test DMARC")
    _line(out, "ok", "example.net MX")
    assert "10 primary.backup.example, 20 mx.example.test" in _line(out, "ok", "backup.example MX")
    assert "backup.example SPF" not in out and "DNS of backup.example (backup MX)" in out
    assert "not checked" in _line(out, "info", "DKIM")
    assert "does not cover mx.example.test" in _line(out, "warning", "tls_cert_file")  # a localhost cert
    assert "\npymailsrv doctor: 0 error(s), " in out


def test_nothing_published_prints_the_records_to_add(served: tuple[Path, ServerProcess], dns: DnsResponder) -> None:
    conf, _ = served
    _records(dns, {HOST: [f"A {ADDRESS}"]})
    status, out = _doctor(conf)
    assert status == 1, out
    assert f"{REVERSE}. 3600 IN PTR {HOST}." in _line(out, "ERROR", f"PTR of {ADDRESS}")
    assert f"example.test. 3600 IN MX 10 {HOST}." in _line(out, "ERROR", "example.test MX")
    assert f'example.test. 3600 IN TXT "v=spf1 a:{HOST} -all"' in _line(out, "warning", "example.test SPF")
    assert ('_dmarc.example.test. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.test"'
            in _line(out, "warning", "example.test DMARC"))
    assert f"example.net. 3600 IN MX 10 {HOST}." in _line(out, "ERROR", "example.net MX")


def test_wrong_records(served: tuple[Path, ServerProcess], dns: DnsResponder) -> None:
    conf, _ = served
    _records(dns, {
        HOST: [f"A {ADDRESS}"],
        REVERSE: ["PTR host-10.isp.example."],
        "host-10.isp.example": ["A 198.51.100.1"],
        "example.test": ["MX 10 mx.elsewhere.example.", 'TXT "v=spf1 ip4:198.51.100.0/24 -all"'],
        "mx.elsewhere.example": ["A 198.51.100.25"],
        "_dmarc.example.test": ['TXT "v=DMARC1; rua=mailto:x@example.test"', 'TXT "v=DMARC1; p=none"'],
        "example.net": ["MX 0 ."],
    })
    status, out = _doctor(conf)
    assert status == 1, out
    assert "does not resolve back" in _line(out, "ERROR", f"PTR of {ADDRESS}")
    assert "not this host" in _line(out, "warning", "example.test MX")
    spf = _line(out, "ERROR", "example.test SPF")
    assert f"{ADDRESS} fails" in spf and f'"v=spf1 ip4:198.51.100.0/24 a:{HOST} -all"' in spf
    assert "2 records" in _line(out, "ERROR", "example.test DMARC")
    assert "null MX" in _line(out, "ERROR", "example.net MX")


def test_dns_failures_are_warnings_not_errors(served: tuple[Path, ServerProcess], dns: DnsResponder) -> None:
    conf, _ = served
    _records(dns, GOOD)
    dns.servfail.add("example.test")
    try:
        status, out = _doctor(conf)
    finally:
        dns.servfail.clear()
    assert "lookup of example.test MX failed" in _line(out, "warning", "example.test MX")
    assert status == 0, out


def test_no_dns(served: tuple[Path, ServerProcess], dns: DnsResponder) -> None:
    conf, _ = served
    dns.queries.clear()
    status, out = _doctor(conf, "--no-dns")
    assert status == 0 and "DNS of" not in out and not dns.queries, out


def test_quick_while_serving(served: tuple[Path, ServerProcess], dns: DnsResponder) -> None:
    conf, _ = served
    dns.queries.clear()
    status, out = _doctor(conf, "--quick")
    assert status == 0, out
    assert len(re.findall(r"^  ok\s+\w+ 127\.0\.0\.1:\d+: answers", out, re.M)) == len(SERVICES)
    assert "database" not in out and "Certificates" not in out and not dns.queries
    assert out.rstrip().endswith("pymailsrv doctor --quick: 0 error(s), 0 warning(s)")


def test_quick_and_full_after_the_server_stopped(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    listen = {f"{name}_listen": f"127.0.0.1:{free_port()}" for name in SERVICES}
    conf = write_config(tmp_path, *tls_files, worker_processes="0", **listen)
    server = ServerProcess(conf).start(timeout=60)
    assert _doctor(conf, "--quick")[0] == 0
    server.stop()
    status, out = _doctor(conf, "--quick")
    assert status == 1 and "not running" in _line(out, "ERROR", "queue manager"), out
    # stopped: each port must be free to bind; one taken by another program is an error
    with socket.socket() as squatter:
        port = int(listen["smtpd_listen"].rsplit(":", 1)[1])
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        status, out = _doctor(conf, "--no-dns")
    assert status == 1, out
    assert "in use by another program" in _line(out, "ERROR", f"smtpd 127.0.0.1:{port}")
    assert "free: pymailsrv can listen here" in _line(out, "ok", f"imap {listen['imap_listen']}")
    _line(out, "warning", "queue manager")
