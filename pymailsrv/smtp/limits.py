"""What an SMTP session sees of the per-client connection limits (Postfix's anvil): the process's
``net.limits.ConnectionLimiter``, or an SMTP worker's proxy to the main process's one."""

from __future__ import annotations

from typing import Protocol


class SessionLimiter(Protocol):
    async def admit(self, ip: str) -> tuple[str, int]:
        """("", n) when the session may go on (``release`` it later); ("count" | "rate", n)
        when refused; n counts the client's sessions, this one included."""

    def release(self, ip: str) -> None: ...
