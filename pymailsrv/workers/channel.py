"""A worker process's side: its spec (the file descriptors the main process passed), its line to
the main process, the proxies that count through it, and the inbox of passed IMAP/POP3
connections."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.auth.throttle import LoginThrottle
from pymailsrv.log import get_logger
from pymailsrv.meter import Meter
from pymailsrv.net.limits import ConnectionLimiter
from pymailsrv.net.networks import Network, in_networks

log = get_logger("master")

REPORT_INTERVAL = 1.0  # how often a worker sends its metrics (when they changed)
REPORT_HEARTBEAT = 10  # intervals after which it reports unchanged figures too: it is alive
REPORT_MAX = 512 * 1024  # the main process reads lines up to 1 MiB
ANSWER_TIMEOUT = 5.0  # an anvil question the main process does not answer in time is allowed


def _nothing() -> None:
    pass


@dataclass(slots=True)
class WorkerSpec:
    slot: int
    channel: int
    inbox: int
    listen: dict[tuple[str, int], list[int]]
    passed: list[tuple[str, int]]

    @classmethod
    def parse(cls, text: str) -> WorkerSpec:
        raw = json.loads(text)
        return cls(int(raw["slot"]), int(raw["channel"]), int(raw["inbox"]),
                   {(str(p), int(i)): [int(fd) for fd in fds] for p, i, fds in raw["listen"]},
                   [(str(p), int(i)) for p, i in raw["passed"]])

    def sockets(self) -> dict[tuple[str, int], list[socket.socket]]:
        return {key: [socket.socket(fileno=fd) for fd in fds] for key, fds in self.listen.items()}


class MainChannel:
    """A worker's line to the main process (see the module notes)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._answers: list[asyncio.Future[str]] = []
        self.closed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, fd: int) -> MainChannel:
        reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while line := await self.reader.readline():
                if self._answers:
                    answer = self._answers.pop(0)
                    if not answer.done():
                        answer.set_result(line.decode("ascii", "replace").strip())
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            for answer in self._answers:
                if not answer.done():
                    answer.set_result("")
            self._answers.clear()

    def send(self, line: str) -> None:
        if not self.closed.is_set() and not self.writer.is_closing():
            self.writer.write(line.encode() + b"\n")

    async def ask(self, line: str) -> str:
        """The answer line, or "" when the main process is gone or slow."""
        if self.closed.is_set():
            return ""
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._answers.append(answer)
        self.send(line)
        try:
            return await asyncio.wait_for(asyncio.shield(answer), ANSWER_TIMEOUT)
        except TimeoutError:
            log.warning("no answer from the main process to %s", line.split()[0])
            return ""

    async def pickup(self, queue_id: str) -> None:
        self.send(f"pickup {queue_id}")

    async def close(self) -> None:
        self.writer.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class RemoteLimiter:
    """``smtp.limits.SessionLimiter`` of a worker: the main process counts (anvil)."""

    def __init__(self, channel: MainChannel, limiter: ConnectionLimiter) -> None:
        self.channel = channel
        self.exceptions: Sequence[Network] = limiter.exceptions
        self.off = not limiter.count_limit and not limiter.rate_limit

    def _asks(self, ip: str) -> bool:
        return not self.off and not in_networks(ip, self.exceptions)

    async def admit(self, ip: str) -> tuple[str, int]:
        if not self._asks(ip):
            return "", 0
        verdict, _, count = (await self.channel.ask(f"open {ip}")).partition(" ")
        if verdict in ("count", "rate"):
            return verdict, int(count) if count.isdigit() else 0
        return "", int(count) if count.isdigit() else 0

    def release(self, ip: str) -> None:
        if self._asks(ip):
            self.channel.send(f"close {ip}")


class RemoteThrottle:
    """``auth.throttle.LoginThrottle`` of a worker: the main process counts."""

    def __init__(self, channel: MainChannel, fallback: LoginThrottle) -> None:
        self.channel = channel
        self.fallback = fallback  # when the main process does not answer

    @staticmethod
    def _args(ip: str, login: str) -> str:
        return f"{quote(ip, safe='')} {quote(login, safe='')}"

    async def admit(self, remote_ip: str, login: str) -> float:
        answer = await self.channel.ask(f"auth {self._args(remote_ip, login)}")
        verdict, _, rest = answer.partition(" ")
        if verdict == "no":
            raise AuthUnavailable(rest)
        if verdict == "ok":
            try:
                return float(rest)
            except ValueError:
                pass
        return await self.fallback.admit(remote_ip, login)

    def cancel(self, remote_ip: str, login: str) -> None:
        self.channel.send(f"auth-cancel {self._args(remote_ip, login)}")

    def success(self, remote_ip: str, login: str) -> None:
        self.channel.send(f"auth-ok {self._args(remote_ip, login)}")

    def failed(self, remote_ip: str, login: str) -> None:
        self.channel.send(f"auth-failed {self._args(remote_ip, login)}")


class RemoteSessionCounter:
    """``auth.base.SessionCounter`` of a worker: the main process counts (one per service)."""

    def __init__(self, channel: MainChannel, service: str) -> None:
        self.channel = channel
        self.service = service

    def _args(self, user: str, ip: str) -> str:
        return f"{self.service} {quote(user, safe='')} {quote(ip, safe='')}"

    async def open(self, user: str, ip: str, limit: int) -> bool:
        answer = await self.channel.ask(f"userip {self._args(user, ip)} {limit}")
        return answer != "no"  # no answer (the main process is gone): do not lock users out

    def close(self, user: str, ip: str) -> None:
        self.channel.send(f"userip-close {self._args(user, ip)}")


class Inbox:
    """A worker's end of the connections the main process passes: each goes to the Adopter of
    its listener (net.Adopter); ``gone`` tells the main process when a session has ended."""

    def __init__(self, fd: int, adopters: Mapping[tuple[str, int], Any], channel: MainChannel) -> None:
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.adopters = adopters
        self.channel = channel
        asyncio.get_running_loop().add_reader(fd, self._receive)

    def _receive(self) -> None:
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(self.sock, 256, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if not msg and not fds:  # the main process is gone
                self.close()
                return
            param, index, verdict, ip = [*msg.decode("ascii", "replace").split(" "), "", "", ""][:4]
            adopter = self.adopters.get((param, int(index) if index.isdigit() else -1))
            counted = verdict == "ok" and ip != "-"
            ended = functools.partial(self.channel.send, f"ip-close {param} {ip}") if counted else _nothing
            for fd in fds:
                conn = socket.socket(fileno=fd)
                if adopter is None:
                    conn.close()
                    self.channel.send("gone")
                    ended()
                else:
                    adopter.adopt(conn, over_limit="" if verdict == "ok" else verdict, ended=ended)

    def stop(self) -> None:
        """Retiring: serve what was passed before the main process stopped passing, then close."""
        if self.sock.fileno() >= 0:
            self._receive()
        self.close()

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()


class MeterReports:
    """A worker's metrics, sent to the main process (``metrics JSON``, no answer) every
    REPORT_INTERVAL when they changed (every REPORT_HEARTBEAT intervals anyway, so that a worker
    whose loop is stuck shows), and once more when the worker ends: the main process adds up the
    latest report of each worker (meter.Hub)."""

    def __init__(self, channel: MainChannel, meter: Meter, interval: float = REPORT_INTERVAL) -> None:
        self.channel = channel
        self.meter = meter
        self.interval = interval
        self._sent = -1
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        quiet = 0
        while True:
            await asyncio.sleep(self.interval)
            quiet += 1
            if self.send(force=quiet >= REPORT_HEARTBEAT):
                quiet = 0

    def send(self, *, force: bool = True) -> bool:
        """Report now if anything changed (or ``force``); whether it did."""
        if self.meter.changes == self._sent and not force:
            return False
        self._sent = self.meter.changes
        line = json.dumps(self.meter.snapshot().to_json(), separators=(",", ":"))
        if len(line) > REPORT_MAX:
            log.warning("metrics report of %d bytes not sent: too many label values", len(line))
            return False
        self.channel.send("metrics " + line)
        return True

    async def close(self) -> None:
        """The last report, then stop."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.send(force=False)
