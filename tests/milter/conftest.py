"""Real milters for the tests: processes started here on loopback or unix sockets in their own
temp directories (the libmilter test milter, rspamd, OpenDKIM, OpenDMARC), and the whole server
of the pipeline tests (tests.pipeline.conftest) to send mail through."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pipeline.conftest import Stack, stack_factory  # noqa: F401  (the fixture, for this area)

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_socket(where: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Until ``unix:/path`` or ``inet:port@host`` accepts a connection (the peer is up); fails
    with the peer's log when it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"peer exited ({proc.returncode}): {log.read_text(errors='replace')[-3000:]}")
        try:
            if where.startswith("unix:"):
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(where[5:])
            else:
                port, _, host = where.partition(":")[2].partition("@")
                socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"peer did not listen on {where}: {log.read_text(errors='replace')[-3000:]}")


def find_program(name: str) -> str | None:
    """A Debian program on PATH, or in /usr/sbin where daemons live (PATH may lack it)."""
    for where in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if where and os.access(where, os.X_OK):
            return where
    return None


def milter_python() -> str | None:
    """An interpreter with pymilter (Debian's python3-milter): this one, or the system's."""
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if candidate and subprocess.run([candidate, "-c", "import Milter"], capture_output=True).returncode == 0:
            return candidate
    return None


class Peers:
    """Processes a test started, stopped at its end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dirs: list[str] = []

    def workdir(self) -> Path:
        path = tempfile.mkdtemp(prefix="mt")  # short: a unix socket path has ~100 bytes
        self.dirs.append(path)
        return Path(path)

    def start(self, argv: list[str], where: str, log: Path, cwd: Path | None = None,
              timeout: float = 60.0) -> subprocess.Popen[bytes]:
        out = log.open("wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, stdin=subprocess.DEVNULL)
        out.close()
        self.procs.append(proc)
        wait_for_socket(where, proc, log, timeout)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(2)  # libmilter waits ~5s for its sessions after SIGTERM: not needed here
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for path in self.dirs:  # the peers' logs, shown by pytest when the test failed
            for log in sorted(Path(path).glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
            shutil.rmtree(path, ignore_errors=True)


RSPAMD_CONF = """\
.include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    # no network: every DNS query goes to a closed loopback port; no regexp compiler (fast start)
    dns { nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 0; }
    disable_hyperscan = true;
}
logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "info"; }
worker "rspamd_proxy" {
    bind_socket = "127.0.0.1:%(port)d";
    milter = yes;
    timeout = 120s;
    upstream "local" { default = yes; self_scan = yes; }
    count = 1;
    spam_header = "X-Spam";
    reject_message = "Spam message rejected";
}
"""
# the headers a ham message gets (rspamd's milter_headers module), for clients too
RSPAMD_HEADERS = """\
use = ["x-spamd-result", "x-spam-status", "x-spam-level"];
skip_local = false;
skip_authenticated = false;
"""


@pytest.fixture(scope="module")
def rspamd() -> Iterator[str]:
    """rspamd's proxy worker in milter mode (scanning itself), on a loopback port, with the
    stock rules and a test-only configuration; returns ``inet:host:port``."""
    binary = find_program("rspamd")
    if binary is None:
        pytest.skip("rspamd is not installed")
    p = Peers()
    try:
        work = p.workdir()
        (work / "local.d").mkdir()
        port = free_port()
        (work / "rspamd.conf").write_text(RSPAMD_CONF % {"port": port})
        (work / "local.d" / "milter_headers.conf").write_text(RSPAMD_HEADERS)
        # rspamd compiles its URL and regexp patterns into DBDIR (~30s on a busy machine): keep
        # them between runs, as a real installation keeps /var/lib/rspamd
        cache = Path(tempfile.gettempdir()) / "pymailsrv-test-rspamd-db"
        cache.mkdir(exist_ok=True)
        dirs = [f"--var={name}={work}" for name in ("LOCAL_CONFDIR", "RUNDIR", "LOGDIR")]
        dirs.append(f"--var=DBDIR={cache}")
        argv = [binary, "-f", "-c", str(work / "rspamd.conf"), *dirs]
        if os.geteuid() == 0:
            argv += ["-i", "-u", "root", "-g", "root"]
        p.start(argv, f"inet:{port}@127.0.0.1", work / "rspamd.log", timeout=300)  # the first start compiles
        yield f"inet:127.0.0.1:{port}"
    finally:
        p.stop()


OPENDKIM_CONF = """\
Mode {mode}
Socket local:{work}/opendkim.sock
Background no
Syslog no
PidFile {work}/opendkim.pid
Canonicalization relaxed/relaxed
RequireSafeKeys no
Domain example.com
Selector test
KeyFile {work}/test.private
InternalHosts {internal}
AuthservID mx.example.test
AlwaysAddARHeader yes
ResolverConfiguration {work}/unbound.conf
"""
# libunbound (OpenDKIM's resolver) asks the test's DNS responder only, on its loopback port
UNBOUND_CONF = """\
server:
    do-not-query-localhost: no
    module-config: "iterator"
forward-zone:
    name: "."
    forward-addr: {dns_host}@{dns_port}
"""


@dataclass
class DkimKey:
    private: Path
    record: str  # the TXT record of test._domainkey.example.com, as DNS text ("…" "…")


@pytest.fixture(scope="module")
def dkim_key() -> Iterator[DkimKey]:
    """An RSA-2048 key for example.com, selector test, made by opendkim-genkey."""
    genkey = find_program("opendkim-genkey")
    if genkey is None:
        pytest.skip("opendkim-genkey (opendkim-tools) is not installed")
    work = Path(tempfile.mkdtemp(prefix="mtkey"))
    try:
        subprocess.run([genkey, "-D", str(work), "-d", "example.com", "-s", "test", "-b", "2048"], check=True)
        pieces = re.findall(r'"([^"]*)"', (work / "test.txt").read_text())
        yield DkimKey(work / "test.private", " ".join(f'"{p}"' for p in pieces))
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def opendkim(peers: Peers, dkim_key: DkimKey) -> Callable[..., str]:
    """Starts OpenDKIM in mode "s" (signs mail from 127.0.0.1 for example.com) or "v" (verifies,
    asking the DNS responder on ``dns_host``:``dns_port``); returns ``unix:/path``."""
    binary = find_program("opendkim")
    if binary is None:
        pytest.skip("opendkim is not installed")

    def start(mode: str, dns_port: int = 9, dns_host: str = "127.0.0.1") -> str:
        work = peers.workdir()
        shutil.copy(dkim_key.private, work / "test.private")
        internal = "127.0.0.1" if mode == "s" else "192.0.2.1"  # a verifier checks our own client too
        (work / "opendkim.conf").write_text(OPENDKIM_CONF.format(mode=mode, work=work, internal=internal))
        (work / "unbound.conf").write_text(UNBOUND_CONF.format(dns_host=dns_host, dns_port=dns_port))
        where = f"unix:{work}/opendkim.sock"
        peers.start([binary, "-f", "-x", str(work / "opendkim.conf")], where, work / "opendkim.log")
        return where

    return start


OPENDMARC_CONF = """\
Socket local:{work}/opendmarc.sock
Background false
Syslog false
PidFile {work}/opendmarc.pid
AuthservID mx.example.test
TrustedAuthservIDs mx.example.test
IgnoreHosts {work}/ignore.hosts
RejectFailures true
HoldQuarantinedMessages true
SPFSelfValidate false
FailureReports false
"""


@pytest.fixture
def opendmarc(peers: Peers) -> Callable[[int], str]:
    """Starts OpenDMARC (rejects p=reject failures, holds p=quarantine ones, trusts the
    Authentication-Results of mx.example.test) in a mount namespace of its own whose
    /etc/resolv.conf names the test's DNS responder, which must listen on port 53 of
    ``127.x.y.z`` (OpenDMARC uses the system resolver). Returns ``unix:/path``."""
    binary, unshare = find_program("opendmarc"), find_program("unshare")
    if binary is None or unshare is None:
        pytest.skip("opendmarc (or unshare) is not installed")
    if subprocess.run([unshare, "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespace for OpenDMARC's own resolv.conf (needs root)")

    def start(dns_host: str) -> str:
        work = peers.workdir()
        (work / "opendmarc.conf").write_text(OPENDMARC_CONF.format(work=work))
        (work / "ignore.hosts").write_text("192.0.2.1\n")  # not 127.0.0.1, the default
        (work / "resolv.conf").write_text(f"nameserver {dns_host}\noptions timeout:1 attempts:1\n")
        script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        argv = [unshare, "-m", "--propagation", "private", "sh", "-c", script, str(work / "resolv.conf"),
                binary, "-f", "-c", str(work / "opendmarc.conf")]
        where = f"unix:{work}/opendmarc.sock"
        peers.start(argv, where, work / "opendmarc.log")
        return where

    return start


@pytest.fixture
def peers() -> Iterator[Peers]:
    p = Peers()
    yield p
    p.stop()


@pytest.fixture
def libmilter(peers: Peers) -> Callable[[str], str]:
    """Starts a libmilter test milter named NAME on a unix socket; returns ``unix:/path``."""
    python = milter_python()
    if python is None:
        pytest.skip("pymilter (python3-milter) is not installed")

    def start(name: str = "test") -> str:
        work = peers.workdir()
        where = f"unix:{work}/milter.sock"
        peers.start([python, str(HERE / "libmilter_app.py"), where, name], where, work / "milter.log")
        return where

    return start
