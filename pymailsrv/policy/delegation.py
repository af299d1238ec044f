"""check_policy_service: the Postfix policy delegation protocol (SMTPD_POLICY_README).

The request is ``name=value`` lines ended by an empty line; the server answers ``action=…`` lines
and an empty line. One connection per server is kept and reused (requests are serialized on it);
a broken connection is reopened once per request. A server that does not answer within the
timeout, or cannot be reached, yields :class:`PolicyError` (the engine answers
``451 4.3.5 Server configuration problem``, smtpd_policy_service_default_action).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.parser import split_list
from pymailsrv.errors import ConfigError

log = logging.getLogger("pymailsrv.policy")
T = TypeVar("T")
MAX_REPLY = 65536


class PolicyError(Exception):
    pass


async def with_timeout(clock: Clock, seconds: float, aw: Awaitable[T]) -> T:
    """``aw`` bounded by ``seconds`` of ``clock`` time (so FakeClock drives it in tests)."""
    task = asyncio.ensure_future(aw)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    if task in done:
        return task.result()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
    raise TimeoutError


def parse_target(spec: str) -> tuple[str, dict[str, str]]:
    """``inet:host:port`` / ``unix:/path`` / ``{ inet:host:port, timeout=10s, default_action=DUNNO }``."""
    spec = spec.strip()
    options: dict[str, str] = {}
    if spec.startswith("{") and spec.endswith("}"):
        items = split_list(spec[1:-1])
        if not items:
            raise ConfigError("check_policy_service: empty { }")
        spec = items[0]
        for item in items[1:]:
            name, eq, value = item.partition("=")
            if not eq:
                raise ConfigError(f'check_policy_service: bad option "{item}"')
            options[name.strip().lower()] = value.strip()
    if not (spec.startswith(("inet:", "unix:")) or spec.count(":") >= 1):
        raise ConfigError(f'check_policy_service: bad server "{spec}" (inet:host:port or unix:/path)')
    return spec, options


def encode_request(attrs: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in attrs.items():
        clean = str(value).replace("\r", " ").replace("\n", " ")
        lines.append(f"{name}={clean}\n")
    return ("".join(lines) + "\n").encode("utf-8", "surrogateescape")


@dataclass(slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (OSError, asyncio.CancelledError):
            pass


class PolicyClient:
    """Connections to one policy server: an idle one is reused (one connection when requests
    come one at a time, as from a Postfix smtpd process); concurrent sessions open more, up to
    ``max_connections``, and wait beyond that."""

    def __init__(self, target: str, *, timeout: float = 100.0, clock: Clock | None = None,
                 max_connections: int = 20) -> None:
        self.target = target
        self.timeout = timeout
        self.clock = clock or SystemClock()
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Conn] = []

    async def _connect(self) -> _Conn:
        if self.target.startswith("unix:"):
            reader, writer = await asyncio.open_unix_connection(self.target[5:])
        else:
            rest = self.target[5:] if self.target.startswith("inet:") else self.target
            host, _, port = rest.rpartition(":")
            reader, writer = await asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port))
        return _Conn(reader, writer)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    async def query(self, attrs: Mapping[str, str]) -> str:
        """The ``action`` the server returns; PolicyError on timeout, I/O error or a bad reply."""
        request = encode_request(attrs)
        try:
            return await with_timeout(self.clock, self.timeout, self._exchange(request))
        except TimeoutError:
            log.warning("timeout while talking to policy server %s", self.target)
            raise PolicyError("timeout") from None
        except (OSError, PolicyError, asyncio.IncompleteReadError, EOFError, ValueError) as exc:
            log.warning("problem talking to server %s: %s", self.target, exc or type(exc).__name__)
            raise PolicyError(str(exc)) from None

    async def _exchange(self, request: bytes) -> str:
        async with self._slots:
            for attempt in (1, 2):
                fresh = not self._idle
                conn = await self._connect() if fresh else self._idle.pop()
                try:
                    action = await self._once(conn, request)
                except (OSError, asyncio.IncompleteReadError, EOFError):
                    await conn.close()
                    if fresh or attempt == 2:  # a reused connection may have timed out: retry once
                        raise
                    continue
                except BaseException:  # timeout (cancelled), bad reply: the stream is out of step
                    await conn.close()
                    raise
                self._idle.append(conn)
                return action
        raise PolicyError("unreachable")

    async def _once(self, conn: _Conn, request: bytes) -> str:
        conn.writer.write(request)
        await conn.writer.drain()
        action: str | None = None
        total = 0
        while True:
            line = await conn.reader.readline()
            if not line:
                raise EOFError("connection closed by policy server")
            total += len(line)
            if total > MAX_REPLY:
                raise PolicyError("reply too long")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if not text:
                break
            name, eq, value = text.partition("=")
            if eq and name.strip().lower() == "action":
                action = value.strip()
        if action is None:
            raise PolicyError("reply without action")
        return action
