"""A Postfix of the test's own (Debian's postfix package) on loopback: its own configuration
directory, queue_directory and data_directory under a scratch directory, one smtpd on a free
port, started with ``postfix -c DIR start`` and stopped with ``postfix -c DIR stop``.

Postfix's daemons run as the ``postfix`` user: the scratch directory must be traversable by it,
so it is made under the system's temporary directory with mode 0755 (pytest's own are 0700).
Starting a Postfix master needs root; without root or without postfix the tests skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

MASTER_CF = """\
{port} inet n  -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
{extra}"""


def postfix_available() -> str:
    """Why Postfix cannot be run here ("" if it can)."""
    if not os.path.exists(POSTFIX):
        return "postfix is not installed (Debian package postfix)"
    if os.geteuid() != 0:
        return "starting a Postfix master needs root"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scratch_directory(prefix: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


class PostfixPeer:
    """``PostfixPeer(base, main={...}).start()``; ``port`` is its smtpd's, ``log()`` its maillog."""

    def __init__(self, base: Path, main: dict[str, str], port: int = 0, master: str = "") -> None:
        """``master``: more master.cf lines (services with their ``-o`` overrides)."""
        self.base = base
        self.extra_master = master
        self.config = base / "postfix"
        self.port = port or free_port()
        self.maillog = base / "postfix.log"
        self.main = {
            "compatibility_level": "3.6",
            "queue_directory": str(base / "postfix-queue"),
            "data_directory": str(base / "postfix-data"),
            "myhostname": "mx.postfix.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "smtp_dns_support_level": "disabled",
            "lmtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "biff": "no",
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(base),
            **main,
        }

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        # Postfix writes its errors to stderr only when that is a terminal; its log file has them
        return subprocess.run([POSTFIX, "-c", str(self.config), *args], capture_output=True, text=True, timeout=60)

    def start(self, timeout: float = 30.0) -> PostfixPeer:
        self.config.mkdir()
        (self.config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in self.main.items()))
        (self.config / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}",
                                                                extra=self.extra_master))
        Path(self.main["queue_directory"]).mkdir()
        data = Path(self.main["data_directory"])
        data.mkdir()
        shutil.chown(data, "postfix")
        done = self._postfix("start")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.makefile("rb").readline().startswith(b"220"):
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"postfix did not start ({done.returncode}): {done.stdout}{done.stderr}\n{self.log()}")

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def wait_log(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if needle in text:
                return text
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not in the Postfix log:\n{self.log()}")

    def stop(self) -> None:
        """``postfix stop`` returns once the master has ended (postfix-script waits for it)."""
        self._postfix("stop")
