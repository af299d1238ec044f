"""A real client: swaks (STARTTLS, AUTH PLAIN and LOGIN, pipelining) against the listeners."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")


def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["swaks", "--hide-all", "--timeout", "10", *args], capture_output=True, text=True,
                          timeout=30)


@pytest.mark.parametrize("extra", [
    ["--auth", "PLAIN", "-tls"],
    ["--auth", "LOGIN", "-tls", "--pipeline"],
])
async def test_swaks_submission(smtp, extra):
    port = smtp.port("submission")
    r = await asyncio.to_thread(swaks, "--server", f"127.0.0.1:{port}", "--from", "alice@example.test",
                                "--to", "friend@far.test", "--auth-user", "alice@example.test",
                                "--auth-password", "wonderland", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    env, content = smtp.queue.messages[-1]
    assert env.sasl_username == "alice@example.test"
    assert b"X-Mailer: swaks" in content


async def test_swaks_smtps_wrong_password(smtp):
    r = await asyncio.to_thread(swaks, "--server", f"127.0.0.1:{smtp.port('smtps')}", "--tlsc",
                                "--from", "alice@example.test", "--to", "x@far.test", "--auth", "LOGIN",
                                "--auth-user", "alice@example.test", "--auth-password", "nope")
    assert r.returncode == 28  # swaks: AUTH failed
    assert smtp.queue.messages == []


async def test_swaks_port25_relay_refused(smtp):
    r = await asyncio.to_thread(swaks, "--server", f"127.0.0.1:{smtp.port()}", "--from", "a@remote.test",
                                "--to", "x@far.test")
    assert r.returncode == 24  # swaks: RCPT refused
    r = await asyncio.to_thread(swaks, "--server", f"127.0.0.1:{smtp.port()}", "--from", "a@remote.test",
                                "--to", "bob@example.test", "--pipeline")
    assert r.returncode == 0
