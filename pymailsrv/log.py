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
import errno
import fcntl
import logging
import logging.handlers
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
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

    def program(self, record: logging.LogRecord) -> str:
        """``pymailsrv/smtpd``: the syslog tag (the program name) of a record."""
        component = record.name.rpartition(".")[2] if record.name.startswith("pymailsrv.") else record.name
        return f"{self.syslog_name}/{component}"

    def body(self, record: logging.LogRecord) -> str:
        """The message after the tag, with Postfix's ``warning:``/``error:`` prefixes and, on debug
        lines, the session id; an exception's traceback on the lines below."""
        message = record.getMessage()
        if record.levelno >= logging.ERROR and not message.startswith(("fatal:", "panic:", "error:")):
            message = f"error: {message}"
        elif record.levelno == logging.WARNING and not message.startswith("warning:"):
            message = f"warning: {message}"
        elif record.levelno <= logging.DEBUG:
            sid = session_id.get()
            if sid:
                message = f"[{sid}] {message}"
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return message

    def format(self, record: logging.LogRecord) -> str:
        return f"{self._time(record.created)} {self.hostname} {self.program(record)}[{self.pid}]: {self.body(record)}"


class _FlushPerLoopIteration:
    """Mixin for a StreamHandler: a record logged on a running event loop is written to the
    stream's buffer and flushed a moment later (``FLUSH_DELAY``), or at once when the buffer
    holds ``FLUSH_BYTES``: the lines of every session served meanwhile go out in one write(2)
    of whole lines (one per line cost ~10 % of the CPU of an SMTP message; one per loop
    iteration still four writes and four extra iterations per message of a lone client).
    Anywhere else (threads, no loop, shutdown) each record is flushed with what was waiting."""

    FLUSH_DELAY = 0.05  # seconds a line may wait in the buffer
    FLUSH_BYTES = 4096  # a flush writes whole lines, below the 8 KiB the stream writes by itself

    _flush_handle: asyncio.TimerHandle | None = None
    _unflushed = 0

    def flush_later(self: Any, size: int) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()  # this thread's loop
        except RuntimeError:
            loop = None
        self._unflushed += size
        if loop is None or loop.is_closed() or self._unflushed >= self.FLUSH_BYTES:
            self._unflushed = 0
            self.flush()  # a timer already set finds less (or nothing) to write
        elif self._flush_handle is None:
            self._flush_handle = loop.call_later(self.FLUSH_DELAY, self._flush_due)

    def _flush_due(self: Any) -> None:
        with self.lock:  # emit (under the handler's lock) may run in a thread meanwhile
            self._flush_handle = None
            self._unflushed = 0
            self.flush()

    def emit(self: Any, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            self.stream.write(line)
            self.flush_later(len(line))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


class LoopFileHandler(_FlushPerLoopIteration, logging.FileHandler):
    pass


class LoopStreamHandler(_FlushPerLoopIteration, logging.StreamHandler):  # type: ignore[type-arg]
    pass


# --- syslog and the systemd journal (log_target) ----------------------------------------------
# RFC 5424 §6.2.1 severities of our levels (TRACE and DEBUG are debug)
def _severity(levelno: int) -> int:
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


_SEVERITY_NAMES = {2: "critical", 3: "error", 4: "warning", 6: "info", 7: "debug"}
FACILITIES = logging.handlers.SysLogHandler.facility_names  # "mail" → 2, "local0" → 16, …
DEFAULT_SYSLOG_SOCKET = "/dev/log"
DEFAULT_JOURNAL_SOCKET = "/run/systemd/journal/socket"


@dataclass(frozen=True, slots=True)
class LogTarget:
    """Where the lines go: ``file`` (``log_file``, or standard error when it is empty),
    ``syslog`` (RFC 3164 or 5424 datagrams to a unix socket or a UDP address) or ``journald``
    (the journal's native protocol, with fields)."""

    kind: str = "file"
    facility: str = "mail"
    syslog_address: str = DEFAULT_SYSLOG_SOCKET  # a path (unix datagram socket) or host[:port] (UDP)
    syslog_format: str = "rfc3164"
    journal_socket: str = DEFAULT_JOURNAL_SOCKET


def syslog_address(text: str) -> str | tuple[str, int]:
    """A unix socket path as it is; ``host``, ``host:port`` or ``[v6]:port`` as a UDP address
    (port 514 by default, RFC 5426 §3.3)."""
    text = text.strip()
    if text.startswith("/"):
        return text
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or not (port or "514").isdigit():
        raise ValueError(f'syslog address "{text}": a socket path or host[:port]')
    return host, int(port or 514)


class SyslogFormatter(PostfixFormatter):
    """What follows ``<PRI>`` in a syslog datagram. RFC 3164 as glibc's syslog(3) writes it to
    the local socket (no host name: the daemon adds its own), with the host name for a remote
    one (RFC 3164 §4.1.2); or RFC 5424 (§6: version, ISO timestamp, host, app, procid)."""

    def __init__(self, syslog_name: str, hostname: str | None, *, rfc5424: bool, local: bool) -> None:
        super().__init__(syslog_name, hostname)
        self.rfc5424 = rfc5424
        self.local = local

    def format(self, record: logging.LogRecord) -> str:
        if self.rfc5424:  # RFC 5424 §6.2: no MSGID, no STRUCTURED-DATA
            stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds")
            return f"1 {stamp} {self.hostname} {self.program(record)} {self.pid} - - {self.body(record)}"
        host = "" if self.local else f" {self.hostname}"
        return f"{self._time(record.created)}{host} {self.program(record)}[{self.pid}]: {self.body(record)}"


class SyslogHandler(logging.handlers.SysLogHandler):
    """The standard library's syslog handler (it reconnects to a restarted local daemon) with our
    level → severity mapping (its own maps TRACE to warning) and no trailing NUL (glibc sends none)."""

    append_nul = False

    def mapPriority(self, levelName: str) -> str:  # the stdlib's name
        levelno = logging.getLevelName(levelName)
        return _SEVERITY_NAMES[_severity(levelno if isinstance(levelno, int) else logging.INFO)]

    def handleError(self, record: logging.LogRecord) -> None:  # the stdlib's name
        """The daemon cannot be reached (not started yet, restarting): the line goes to standard
        error instead of a "Logging error" traceback per line."""
        try:
            line = self.format(record)
        except Exception:
            super().handleError(record)
            return
        sys.stderr.write(f"<{_severity(record.levelno)}>{line}\n")


def journal_fields(fields: dict[str, str]) -> bytes:
    """The journal's native protocol (systemd's "Native Journal Protocol"): ``NAME=value\n`` per
    field, or for a value holding a newline ``NAME\n``, its length as 64-bit little endian, the
    value and ``\n``."""
    out = bytearray()
    for name, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """One datagram of fields per record to journald's socket: MESSAGE, PRIORITY,
    SYSLOG_FACILITY, SYSLOG_IDENTIFIER (``pymailsrv/smtpd``, as Postfix's programs appear in the
    journal), SYSLOG_PID and PYMAILSRV_SESSION on debug lines. A record too large for a datagram
    goes in a sealed memfd passed with the datagram, as sd_journal_send does. While the socket
    cannot be reached (journald restarting) the line goes to standard error instead.

    Written here rather than taken from python-systemd: that binding is a C extension built
    against libsystemd (no wheels) and always sends to the fixed socket path."""

    def __init__(self, formatter: PostfixFormatter, facility: int, path: str = DEFAULT_JOURNAL_SOCKET) -> None:
        super().__init__()
        self.postfix = formatter
        self.facility = facility
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.setFormatter(formatter)

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        fields = {"MESSAGE": self.postfix.body(record), "PRIORITY": str(_severity(record.levelno)),
                  "SYSLOG_FACILITY": str(self.facility), "SYSLOG_IDENTIFIER": self.postfix.program(record),
                  "SYSLOG_PID": str(self.postfix.pid)}
        sid = session_id.get()
        if sid:
            fields["PYMAILSRV_SESSION"] = sid
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = journal_fields(self.fields(record))
        except Exception:
            self.handleError(record)
            return
        try:
            try:
                self.sock.sendto(data, self.path)
            except OSError as exc:
                if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                    raise
                self._send_memfd(data)
        except OSError:
            sys.stderr.write(f"<{_severity(record.levelno)}>{self.postfix.format(record)}\n")

    def _send_memfd(self, data: bytes) -> None:
        fd = os.memfd_create("pymailsrv-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS,  # journald takes only a sealed memfd
                        fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
            self.sock.sendmsg([b""], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))], 0, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.sock.close()
        super().close()


class PrefixedStreamHandler(LoopStreamHandler):
    """Standard error with sd-daemon(3) ``<N>`` severity prefixes, which journald reads from a
    service's output stream: journald output when its socket is not there."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_severity(record.levelno)}>{super().format(record)}"


def _target_handler(target: LogTarget, log_file: str, formatter: PostfixFormatter,
                    syslog_name: str, hostname: str | None) -> logging.Handler:
    if target.kind == "syslog":
        address = syslog_address(target.syslog_address)
        handler: logging.Handler = SyslogHandler(address, FACILITIES[target.facility])
        handler.setFormatter(SyslogFormatter(syslog_name, hostname, rfc5424=target.syslog_format == "rfc5424",
                                             local=isinstance(address, str)))
        return handler
    if target.kind == "journald":
        if os.path.exists(target.journal_socket):
            return JournalHandler(formatter, FACILITIES[target.facility], target.journal_socket)
        handler = PrefixedStreamHandler(sys.stderr)
    else:
        handler = LoopFileHandler(log_file) if log_file else LoopStreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    return handler


def setup_logging(
    *, level: str = "info", log_file: str = "", syslog_name: str = "pymailsrv", hostname: str | None = None,
    target: LogTarget | None = None,
) -> None:
    """Install one handler on the ``pymailsrv`` logger: ``target``'s (by default the file
    target: ``log_file``, or standard error when it is empty)."""
    # what our format does not print, LogRecord need not look up (getpid, thread and process names)
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    logging._srcfile = None  # nor the caller's file and line (the logging HOWTO's "Optimization")
    root = logging.getLogger("pymailsrv")
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, SyslogHandler | JournalHandler):  # their sockets; a file handler is left
            old.close()  # as it was: a thread may still be writing a line through it
    formatter = PostfixFormatter(syslog_name, hostname)
    root.addHandler(_target_handler(target or LogTarget(), log_file, formatter, syslog_name, hostname))
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
