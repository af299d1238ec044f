"""Run ``pymailsrv serve`` as a real process on ephemeral ports and read the ports back from its
log (``<service> listening on host:port``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"\b(\w+) listening on (\S+):(\d+)$")
SERVICES = ("smtpd", "submission", "smtps", "imap", "imaps", "pop3", "pop3s")


def cli(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pymailsrv", "--config", str(config), *args],
                          input=stdin, capture_output=True, text=True, env=env, timeout=60)


def write_config(tmp: Path, cert: str, key: str, **extra: str) -> Path:
    params = {
        "myhostname": "mx.example.test",
        "data_directory": str(tmp / "data"),
        "tls_cert_file": cert,
        "tls_key_file": key,
        "mynetworks_style": "host",
        **{f"{name}_listen": "127.0.0.1:0" for name in SERVICES},
        **extra,
    }
    conf = tmp / "pymailsrv.conf"
    conf.write_text("".join(f"{k} = {v}\n" for k, v in params.items()))
    return conf


class ServerProcess:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.log_path = config.parent / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}

    def start(self, timeout: float = 30.0, expect: tuple[str, ...] = SERVICES) -> ServerProcess:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "pymailsrv", "--config", str(self.config), "serve"],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            self.ports = {m.group(1): int(m.group(3)) for m in map(LISTENING.search, text.splitlines()) if m}
            if "daemon started" in text and all(s in self.ports for s in expect):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise TimeoutError(self.log_path.read_text(errors="replace"))

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.log.close()
        return code
