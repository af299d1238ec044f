"""systemd's service notifications (sd_notify(3)) without libsystemd: one datagram per state.

Under ``Type=notify-reload`` (or ``notify``) systemd sets ``$NOTIFY_SOCKET``; the main process says
READY=1 once it serves, RELOADING=1 / READY=1 around a reload, STOPPING=1 when it stops, and,
with ``WatchdogSec=`` (``$WATCHDOG_USEC``), WATCHDOG=1 at half the interval while its event loop
runs. Without ``$NOTIFY_SOCKET`` every call does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        # '@' names an abstract socket (a leading NUL byte)
        self.address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog = int(usec) / 1e6 if usec.isdigit() and mine else 0.0
        self._task: asyncio.Task[None] | None = None

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
            sock.sendto("\n".join(fields).encode(), self.address)

    def ready(self, status: str = "") -> None:
        self.send("READY=1", f"MAINPID={os.getpid()}", *([f"STATUS={status}"] if status else []))
        if self.watchdog and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._ping())

    def reloading(self) -> None:
        # systemd wants the monotonic clock's time with RELOADING=1 (Type=notify-reload)
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1")
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _ping(self) -> None:
        """A loop that is stuck stops pinging, and systemd restarts the service."""
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog / 2)
