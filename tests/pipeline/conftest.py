"""A whole server for the pipeline tests, wired as ``pymailsrv serve`` wires it (app.start_queue,
app.start_smtp): the restriction engine over an in-memory PostfixAdmin directory, the real queue
manager, spool and Maildir store. Stages are added through the configuration only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import start_memory_stack

STAGES = "python:tests.pipeline.stages:"
DEFAULT = "restrictions, header_checks, cleanup, content_filter"


@dataclass
class Stack:
    ports: dict[str, int]
    queue: Any
    vmail: Path

    def port(self, kind: str = "smtpd") -> int:
        return self.ports[kind]

    def maildir(self, address: str) -> list[bytes]:
        """The messages in ``address``'s Maildir (new/), oldest first."""
        local, _, domain = address.partition("@")
        new = self.vmail / domain / local / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []

    async def wait_for_mail(self, address: str, count: int = 1) -> list[bytes]:
        for _ in range(200):
            found = self.maildir(address)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail for {address}")


@pytest.fixture
async def stack_factory(settings_factory: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    stops: list[Callable[[], Any]] = []

    async def make(**params: str) -> Stack:
        vmail = tmp_path / "vmail"
        base = {"smtpd_listen": "127.0.0.1:0", "submission_listen": "127.0.0.1:0", "mynetworks": "192.0.2.0/24",
                "virtual_mailbox_base": str(vmail), "dns_nameservers": "127.0.0.1:9", "smtpd_error_sleep_time": "0"}
        base.update(params)
        settings = settings_factory(**base)
        ports, queue, _ = await start_memory_stack(settings, vmail, "mx.example.test", stops)
        return Stack(ports, queue, vmail)

    yield make
    for stop in reversed(stops):
        await stop()
