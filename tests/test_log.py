"""Postfix-style log lines, written in batches of whole lines when logged on a loop."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymailsrv.log import escape_for_log, get_logger, setup_logging

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


def test_lines_logged_on_a_loop_are_written_together_a_moment_later(log_file: Path) -> None:
    from pymailsrv.log import LoopFileHandler

    async def main() -> tuple[list[str], list[str]]:
        for i in range(20):
            get_logger("smtpd").info("line %d", i)
        before = log_file.read_text().splitlines()
        await asyncio.sleep(0)  # iterations go by: still buffered (one write for many sessions)
        await asyncio.sleep(0)
        between = log_file.read_text().splitlines()
        await asyncio.sleep(LoopFileHandler.FLUSH_DELAY * 2)
        return before, between

    before, between = asyncio.run(main())
    assert before == between == []
    lines = log_file.read_text().splitlines()
    assert [LINE.match(x).group(2) for x in lines] == [f"line {i}" for i in range(20)]  # type: ignore[union-attr]


def test_a_full_buffer_is_written_at_once_in_whole_lines(log_file: Path) -> None:
    from pymailsrv.log import LoopFileHandler

    async def main() -> list[str]:
        n = LoopFileHandler.FLUSH_BYTES // 40 + 1  # lines of more than 40 bytes
        for i in range(n):
            get_logger("smtpd").info("line %d", i)
        return log_file.read_text().splitlines(keepends=True)

    written = asyncio.run(main())
    assert written and all(x.endswith("\n") for x in written)


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


@pytest.mark.parametrize(("name", "logged"), [
    ("alice@example.com", "alice@example.com"),
    ("jürgen@bücher.example", "jürgen@bücher.example"),
    ("alice\r\nJan  1 00:00:00 mx pymailsrv/imap-login[1]: Login: user=<root>",
     "alice\\015\\012Jan\\040\\0401\\04000:00:00\\040mx\\040pymailsrv/imap-login[1]:\\040Login:"
     "\\040user=\\074root\\076"),
    ("x>, rip=6.6.6.6, <y", "x\\076\\054\\040rip=6.6.6.6\\054\\040\\074y"),
    ("a\x00b\x1b[2Jc\x7f", "a\\000b\\033[2Jc\\177"),
    ("back\\slash", "back\\134slash"),  # so an escape in the log can only come from us
    ("\u202eevil\u2028", "\\342\\200\\256evil\\342\\200\\250"),  # RTL override, line separator
    (b"caf\xe9".decode("utf-8", "surrogateescape"), "caf\\351"),  # not UTF-8: the byte as sent
])
def test_escape_for_log(name: str, logged: str) -> None:
    assert escape_for_log(name) == logged


def test_escape_for_log_cuts_long_names() -> None:
    assert escape_for_log("x" * 300) == "x" * 256 + "..."
    assert escape_for_log("\n" * 10, limit=4) == "\\012" * 4 + "..."

