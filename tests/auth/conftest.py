from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pymailsrv.clock import FakeClock


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + ("\n" + str(record.exc_info) if record.exc_info else ""))


@pytest.fixture
def auth_log() -> Iterator[ListHandler]:
    """Every line the pymailsrv loggers emit during the test (DEBUG and up)."""
    logger = logging.getLogger("pymailsrv")
    handler = ListHandler()
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


class RecordingClock(FakeClock):
    """A FakeClock that also remembers every sleep asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.requested: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        await super().sleep(seconds)


class InstantClock(FakeClock):
    """Sleeps return at once, moving the clock forward (delays checked, never waited)."""

    def __init__(self) -> None:
        super().__init__()
        self.requested: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        self._now += seconds
        self._mono += seconds
