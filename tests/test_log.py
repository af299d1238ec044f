"""Postfix-style log lines, written once per event-loop iteration when logged on a loop."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymailsrv.log import get_logger, setup_logging

LINE = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d mx pymailsrv/smtpd\[(\d+)\]: (.*)$")


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mail.log"
    setup_logging(log_file=str(path), hostname="mx.example.test")
    yield path
    root = logging.getLogger("pymailsrv")
    for handler in list(root.handlers):
        handler.close()
        root.removeHandler(handler)


def test_lines_have_postfix_shape(log_file: Path) -> None:
    get_logger("smtpd").info("connect from %s", "unknown[192.0.2.7]")
    get_logger("smtpd").warning("too many errors")
    lines = log_file.read_text().splitlines()
    m = [LINE.match(line) for line in lines]
    assert all(m) and int(m[0].group(1)) == os.getpid()  # type: ignore[union-attr]
    assert [x.group(2) for x in m if x] == ["connect from unknown[192.0.2.7]", "warning: too many errors"]


def test_lines_logged_on_a_loop_are_written_together_at_the_end_of_the_iteration(log_file: Path) -> None:
    async def main() -> list[str]:
        for i in range(20):
            get_logger("smtpd").info("line %d", i)
        before = log_file.read_text().splitlines()
        await asyncio.sleep(0)  # the iteration ends: one flush
        await asyncio.sleep(0)
        return before

    before = asyncio.run(main())
    assert before == []  # nothing written mid-iteration
    lines = log_file.read_text().splitlines()
    assert [LINE.match(x).group(2) for x in lines] == [f"line {i}" for i in range(20)]  # type: ignore[union-attr]


def test_lines_logged_in_a_thread_are_written_at_once(log_file: Path) -> None:
    seen: list[str] = []

    def worker() -> None:
        get_logger("smtpd").info("from a thread")
        seen.extend(log_file.read_text().splitlines())

    async def main() -> None:
        t = threading.Thread(target=worker)
        t.start()
        t.join()

    asyncio.run(main())
    assert len(seen) == 1 and seen[0].endswith("from a thread")
