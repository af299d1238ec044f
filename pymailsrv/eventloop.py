"""Which asyncio event loop ``pymailsrv serve`` runs on (``event_loop``): uvloop (libuv, the
transports and the loop written in Cython) or the standard library's.

Only the serving processes (the main one and every worker) use this; one-shot commands stay on
``asyncio.run``. uvloop is reached only through its public API (``uvloop.new_event_loop``, given
to ``asyncio.Runner`` as its loop factory), so nothing here depends on how either loop works inside.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from pymailsrv.errors import ConfigError

CHOICES = ("auto", "uvloop", "asyncio")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoopChoice:
    name: str  # "uvloop" or "asyncio": what the startup log line names
    factory: Callable[[], asyncio.AbstractEventLoop] | None  # None: asyncio's own

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """``asyncio.run`` on this loop (the Runner cancels what is left and closes the loop)."""
        with asyncio.Runner(loop_factory=self.factory) as runner:
            return runner.run(main)


def choose(setting: str) -> LoopChoice:
    """``auto``: uvloop when it can be imported, else asyncio; ``uvloop`` when it cannot is an error."""
    if setting not in CHOICES:
        raise ConfigError(f"event_loop: {setting!r} is not one of {', '.join(CHOICES)}")
    if setting == "asyncio":
        return LoopChoice("asyncio", None)
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        if setting == "uvloop":
            raise ConfigError(f"event_loop = uvloop: cannot import uvloop ({exc}); "
                              "install it (pip install uvloop) or set event_loop = asyncio") from None
        return LoopChoice("asyncio", None)
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return LoopChoice("uvloop", factory)


def running() -> str:
    """The name of the loop this code runs on, for the startup line: what runs, not what was asked."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]
