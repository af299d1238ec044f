"""Pebble, Let's Encrypt's test CA (Debian package ``pebble``), run on loopback for one test.

The Debian package ships no certificate for Pebble's own HTTPS API: one is made here (and is
what the ACME client is told to trust, acme_ca_file). Pebble validates HTTP-01 on its
``httpPort`` and TLS-ALPN-01 on its ``tlsPort`` of whatever its ``-dnsserver`` says the name
is: the test's DNS responder and the server's acme_http_listen/acme_tls_listen ports.

Environment: PEBBLE_VA_NOSLEEP=1 (no random delay before validating) and
PEBBLE_WFE_NONCEREJECT=0 (Pebble rejects 5% of good nonces by default; the acme library retries
a badNonce once, so a long test would fail now and then on two in a row)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from pymailsrv.config.tls import generate_self_signed

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"


def free_port() -> int:
    """A port free on 127.0.0.1 now (Pebble and the CA's validation ports are given as numbers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pebble:
    def __init__(self, workdir: Path, *, dns_port: int, http_port: int = 0, tls_port: int = 0) -> None:
        self.workdir = workdir
        self.dns_port = dns_port
        self.http_port = http_port or free_port()
        self.tls_port = tls_port or free_port()
        self.api_cert = str(workdir / "pebble-api-cert.pem")
        self.api_key = str(workdir / "pebble-api-key.pem")
        self.port = self.management_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "pebble.log"

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self, timeout: float = 30.0) -> Pebble:
        self.workdir.mkdir(parents=True, exist_ok=True)
        generate_self_signed("localhost", self.api_cert, self.api_key, days=30)  # SAN 127.0.0.1 too
        for _ in range(3):  # a port picked free may be taken before Pebble binds it
            self.port, self.management_port = free_port(), free_port()
            if self._run(timeout):
                return self
        raise RuntimeError(f"pebble did not start:\n{self.log_path.read_text(errors='replace')}")

    def _run(self, timeout: float) -> bool:
        config = self.workdir / "pebble-config.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": self.api_cert,
            "privateKey": self.api_key,
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}))
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([PEBBLE, "-config", str(config), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self._get(f"https://127.0.0.1:{self.port}/dir")
                return True
            except OSError:
                time.sleep(0.1)
        self.stop()
        return False

    def _get(self, url: str) -> bytes:
        ctx = ssl.create_default_context(cafile=self.api_cert)
        with urllib.request.urlopen(url, context=ctx, timeout=10) as response:
            data: bytes = response.read()
            return data

    def root_pem(self) -> str:
        """The root the issued chains lead to (Pebble makes a new one on every start)."""
        return self._get(f"https://127.0.0.1:{self.management_port}/roots/0").decode("ascii")

    def cert_status(self, serial_hex: str) -> str:
        """"Valid" or "Revoked"."""
        data = json.loads(self._get(f"https://127.0.0.1:{self.management_port}/cert-status-by-serial/{serial_hex}"))
        return str(data["Status"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
