"""Logging: Postfix-style event lines, debug lines with a session id, and opt-in protocol traces.

Every mail event is one INFO line in the shape admins and pflogsumm know::

    Nov 22 04:15:01 mx pymailsrv/smtpd[812]: connect from unknown[192.0.2.7]
    Nov 22 04:15:02 mx pymailsrv/virtual[812]: 4F3A2B1C0D: to=<a@example.com>, relay=virtual, ...

A component logs through ``get_logger("smtpd")`` (etc.); the part after ``pymailsrv.`` becomes the
Postfix-style program name. Pass ``--syslog-name=pymailsrv`` to pflogsumm (or set
``syslog_name = postfix`` in the configuration) to read these logs.

Credentials and message bodies are never given to these loggers; protocol traces that may carry
them go to ``pymailsrv.trace.<proto>`` at level ``TRACE`` and are off unless asked for.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import sys
import time
from typing import Any

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

session_id: contextvars.ContextVar[str] = contextvars.ContextVar("session_id", default="")


def get_logger(component: str) -> logging.Logger:
    """The logger of one component (``smtpd``, ``qmgr``, ``virtual``, ``imap``, ``pop3`` …)."""
    return logging.getLogger(f"pymailsrv.{component}")


def trace_logger(protocol: str) -> logging.Logger:
    """Wire traces; enabled only when log_level is TRACE."""
    return logging.getLogger(f"pymailsrv.trace.{protocol}")


class PostfixFormatter(logging.Formatter):
    """``Mon DD HH:MM:SS host name/component[pid]: message`` (syslog style, as Postfix logs)."""

    def __init__(self, syslog_name: str = "pymailsrv", hostname: str | None = None) -> None:
        super().__init__()
        self.syslog_name = syslog_name
        self.hostname = (hostname or socket.gethostname()).split(".")[0]
        self.pid = os.getpid()
        self._second = -1
        self._stamp = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # strftime once a second, not once a line
            self._second, self._stamp = second, time.strftime("%b %e %H:%M:%S", time.localtime(second))
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        stamp = self._time(record.created)
        component = record.name.rpartition(".")[2] if record.name.startswith("pymailsrv.") else record.name
        message = record.getMessage()
        if record.levelno >= logging.ERROR and not message.startswith(("fatal:", "panic:", "error:")):
            message = f"error: {message}"
        elif record.levelno == logging.WARNING and not message.startswith("warning:"):
            message = f"warning: {message}"
        elif record.levelno <= logging.DEBUG:
            sid = session_id.get()
            if sid:
                message = f"[{sid}] {message}"
        line = f"{stamp} {self.hostname} {self.syslog_name}/{component}[{self.pid}]: {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _FlushPerLoopIteration:
    """Mixin for a StreamHandler: a record logged on a running event loop is written to the
    stream's buffer and flushed when the loop's current iteration ends, so the lines of every
    session served in that iteration go out in one write(2) (one per line cost ~10 % of the CPU
    of an SMTP message). Anywhere else (threads, no loop, shutdown) each record is flushed."""

    _flush_scheduled = False

    def flush_later(self: Any) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()  # this thread's loop
        except RuntimeError:
            loop = None
        if loop is None or loop.is_closed():
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush_now)

    def _flush_now(self: Any) -> None:
        self._flush_scheduled = False
        self.flush()

    def emit(self: Any, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            self.flush_later()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


class LoopFileHandler(_FlushPerLoopIteration, logging.FileHandler):
    pass


class LoopStreamHandler(_FlushPerLoopIteration, logging.StreamHandler):  # type: ignore[type-arg]
    pass


def setup_logging(
    *, level: str = "info", log_file: str = "", syslog_name: str = "pymailsrv", hostname: str | None = None
) -> None:
    """Install one handler on the ``pymailsrv`` logger (stderr, or ``log_file`` when set)."""
    # what our format does not print, LogRecord need not look up (getpid, thread and process names)
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    logging._srcfile = None  # nor the caller's file and line (the logging HOWTO's "Optimization")
    root = logging.getLogger("pymailsrv")
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler = LoopFileHandler(log_file) if log_file else LoopStreamHandler(sys.stderr)
    handler.setFormatter(PostfixFormatter(syslog_name, hostname))
    root.addHandler(handler)
    levels = {"trace": TRACE, "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
              "error": logging.ERROR}
    root.setLevel(levels.get(level.lower(), logging.INFO))
    root.propagate = False


# A blank, backslash, ``<``, ``>`` and ``,`` could end a ``user=<…>`` field or start a forged one.
_FIELD_BREAKERS = frozenset(" \\<>,")


def escape_for_log(text: str, limit: int = 256) -> str:
    """A name a client supplied (login, HELO name, address) as it may appear in one log line.

    Every character that is not printable (controls, format characters, line separators) and
    every field breaker is written as a backslash and three octal digits per UTF-8 byte, as
    Postfix and Dovecot escape: ``\\r\\n`` becomes ``\\015\\012``, a blank ``\\040``. Bytes that
    were not UTF-8 (decoded with ``surrogateescape``) are written as themselves. The line can
    neither be broken nor given a forged field (``rip=``) that fail2ban would trust; an escaped
    name still says exactly what the client sent. Longer text is cut at ``limit`` characters,
    marked with ``...``.
    """
    head = text[:limit]
    if head.isprintable() and _FIELD_BREAKERS.isdisjoint(head):
        clean = head
    else:
        clean = "".join(c if c.isprintable() and c not in _FIELD_BREAKERS else _octal(c) for c in head)
    return clean + "..." if len(text) > limit else clean


def _octal(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte surrogateescape kept
        return f"\\{code - 0xDC00:03o}"
    return "".join(f"\\{byte:03o}" for byte in char.encode("utf-8", "surrogatepass"))


def fmt_delay(x: float) -> str:
    """Postfix's delay figures: two significant digits below 10 s, whole seconds above."""
    if x < 0.005:
        return "0"
    if x < 1:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    if x < 10:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return str(round(x))
