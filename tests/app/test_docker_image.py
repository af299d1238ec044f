"""The Docker image: built from the Dockerfile, it runs as a non-root user with the data
directory as its volume and becomes healthy by its HEALTHCHECK (``pymailsrv doctor --quick``).

Skips without a Docker daemon. Building installs the dependencies from the package index, so it
also waits for PYMAILSRV_DOCKER_TEST=1: the rest of the suite touches no network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.server_process import ROOT


def _daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = [
    pytest.mark.skipif(not _daemon(), reason="no Docker daemon"),
    pytest.mark.skipif(os.environ.get("PYMAILSRV_DOCKER_TEST") != "1",
                       reason="building the image needs the package index: set PYMAILSRV_DOCKER_TEST=1"),
    pytest.mark.slow,
]
TAG = "pymailsrv-test:healthcheck"
CONFIG = """\
myhostname = mail.example.test
data_directory = /var/lib/pymailsrv
tls_cert_file = /var/lib/pymailsrv/tls/cert.pem
tls_key_file = /var/lib/pymailsrv/tls/key.pem
mynetworks_style = host
smtpd_listen = 0.0.0.0:25
submission_listen = 0.0.0.0:587
smtps_listen = 0.0.0.0:465
imap_listen = 0.0.0.0:143
imaps_listen = 0.0.0.0:993
pop3_listen = 0.0.0.0:110
pop3s_listen = 0.0.0.0:995
"""


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode:
        raise AssertionError(f"docker {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    docker("build", "--tag", TAG, str(ROOT), timeout=1800)
    return TAG


@pytest.fixture
def container(image: str, tmp_path: Path) -> Iterator[str]:
    conf = tmp_path / "pymailsrv.conf"
    conf.write_text(CONFIG)
    conf.chmod(0o644)
    name = f"pymailsrv-test-{os.getpid()}"
    docker("run", "--detach", "--name", name, "--env", "MAIL_HOSTNAME=mail.example.test",
           "--sysctl", "net.ipv4.ip_unprivileged_port_start=0",
           "--volume", f"{conf}:/etc/pymailsrv/pymailsrv.conf:ro",
           "--health-interval", "2s", "--health-start-period", "90s", image)
    try:
        yield name
    finally:
        docker("rm", "--force", "--volumes", name, check=False)


def _health(name: str) -> tuple[str, str]:
    state = json.loads(docker("inspect", "--format", "{{json .State}}", name))
    return state.get("Status", ""), (state.get("Health") or {}).get("Status", "")


def test_the_container_runs_as_a_user_and_gets_healthy(image: str, container: str) -> None:
    volumes = json.loads(docker("image", "inspect", "--format", "{{json .Config.Volumes}}", image))
    assert list(volumes) == ["/var/lib/pymailsrv"]
    health = json.loads(docker("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image))
    assert health["Test"] == ["CMD", "pymailsrv", "doctor", "--quick"]
    deadline = time.monotonic() + 180
    status, healthy = _health(container)
    while time.monotonic() < deadline and status == "running" and healthy != "healthy":
        time.sleep(1)
        status, healthy = _health(container)
    assert (status, healthy) == ("running", "healthy"), docker("logs", container, check=False)
    assert docker("exec", container, "id", "-u") == "5000"
    assert docker("exec", container, "stat", "-c", "%u %a", "/var/lib/pymailsrv/tls/key.pem") == "5000 600"
    out = docker("exec", container, "pymailsrv", "doctor", "--quick")
    assert "0 error(s)" in out and "smtpd 0.0.0.0:25: answers: 220 mail.example.test" in out
