"""What every line-based login protocol's session shares (POP3, ManageSieve): buffered replies,
the read loop, the error budget, the one place where errors become replies (STYLE.md rule 3),
and STARTTLS that refuses to upgrade while plaintext is pending. A protocol's session subclasses
``LineSession`` and supplies its parser (``feed``/``buffered``), its dispatcher (``execute``) and
its dialect: log names and the wording of the errors (``Dialect``, ``own_error_reply``).

Implementation notes:
- Replies are buffered and written when the session is about to wait for input, so pipelined
  commands get one write.
- Plaintext that arrived after the STARTTLS line closes the connection instead of being read as
  if it came encrypted (RFC 2595 §4, RFC 3207 §4.2, the CVE-2011-0411 class).
- No exception text reaches the client: an unexpected error is a fixed reply, its traceback is
  logged.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from pymailsrv.errors import ClientSyntaxError, Refusal, TemporaryFailure
from pymailsrv.log import TRACE, escape_for_log, get_logger, trace_logger
from pymailsrv.net.conn import ConnectionClosed, PlaintextPending
from pymailsrv.types import Account


class SessionConnection(Protocol):
    """What a session needs of its byte pipe: the subset of ``net.conn.Connection`` it uses
    (a socket in production, a fake in unit tests)."""

    peer_ip: str
    local_ip: str
    tls: bool
    last_activity: float

    async def read_some(self, max_bytes: int = 65536) -> bytes:
        """Some bytes; raises ConnectionClosed at end of input."""
        ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    async def start_tls(self, context: ssl.SSLContext, *, timeout: float = 30.0) -> None: ...

    def close(self) -> None: ...


class PlaintextPolicy(Protocol):
    """disable_plaintext_auth and its exceptions (``auth.plaintext.PlaintextRule``)."""

    def allows(self, *, tls: bool, remote_ip: str, local_ip: str = "") -> bool: ...


class SessionOptions(Protocol):
    """The settings the shared part reads (a protocol's frozen options dataclass)."""

    @property
    def error_limit(self) -> int: ...

    @property
    def plaintext(self) -> PlaintextPolicy: ...

    @property
    def tls_context(self) -> ssl.SSLContext | None: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one protocol speaks: the names of its logs, and its words for the error kinds the
    dispatcher maps, as ready wire lines."""

    component: str  # its logs: "pop3", "pop3-login", the "pop3" trace
    name: str  # in the log line of an internal error ("POP3")
    starttls: str  # the command's name, in the log line of a refused upgrade ("STLS")
    syntax: Callable[[str], bytes]  # the input does not parse (text from the parser or dispatcher)
    too_many: bytes  # the error budget is spent: the last reply of the session
    refusal: Callable[[Refusal], bytes]
    temporary: bytes  # a dependency that may heal (disk, database)
    internal: bytes  # anything else: a fixed text, the traceback in the log only
    shutdown: bytes  # the goodbye to an idle session when the server stops


ConnT = TypeVar("ConnT", bound=SessionConnection)
OptionsT = TypeVar("OptionsT", bound=SessionOptions)
ItemT = TypeVar("ItemT")


class LineSession(Generic[ConnT, OptionsT, ItemT]):
    """The shared part of a session; ``ItemT`` is what the protocol's parser yields."""

    dialect: ClassVar[Dialect]

    def __init__(self, conn: ConnT, options: OptionsT) -> None:
        self.log = get_logger(self.dialect.component)
        self.login_log = get_logger(f"{self.dialect.component}-login")
        self.trace = trace_logger(self.dialect.component)
        self.conn = conn
        self.options = options
        self.account: Account | None = None
        self.quit = False  # leave the loop after flushing
        self.starttls_requested = False
        self.tracing = self.trace.isEnabledFor(TRACE)  # decided once: no cost per line when off
        self.idle = False  # waiting for input with every reply flushed (a goodbye may be sent)
        self._input: deque[ItemT] = deque()
        self._out: list[bytes] = []
        self._outsize = 0
        self._errors = 0

    # --- what a protocol supplies ---------------------------------------------------------------
    def feed(self, data: bytes) -> Iterable[ItemT]:
        """The complete items (lines, requests) in ``data``, given to the protocol's parser."""
        raise NotImplementedError

    def buffered(self) -> int:
        """How many bytes the parser holds that make no complete item yet."""
        raise NotImplementedError

    async def execute(self, item: ItemT) -> None:
        """One item: parse, gate by state, run; errors are raised, ``dispatch`` answers them."""
        raise NotImplementedError

    def own_error_reply(self, exc: Exception) -> bytes | None:
        """The reply to an error kind of this protocol alone (None: one of the shared kinds)."""
        return None

    # --- output ---------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.tracing:  # the status line only: message bodies never reach the trace
            self.trace.log(TRACE, "S: %s", data[:200].partition(b"\r\n")[0].decode("utf-8", "replace"))
        self._out.append(data)
        self._outsize += len(data)

    async def flush(self) -> None:
        if self._out:
            data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
            self._out.clear()
            self._outsize = 0
            self.conn.write(data)
        await self.conn.drain()

    # --- input ----------------------------------------------------------------------------------
    async def next_input(self) -> ItemT | None:
        """The next item from the client (flushing replies first if we must wait); None at EOF."""
        while not self._input:
            await self.flush()
            self.idle = True
            try:
                data = await self.conn.read_some()
            except ConnectionClosed:
                return None
            finally:
                self.idle = False
            self._input.extend(self.feed(data))
        return self._input.popleft()

    def notify_shutdown(self) -> None:
        """Say goodbye if no reply is half-written."""
        if self.idle:
            self.conn.write(self.dialect.shutdown)

    def plaintext_allowed(self) -> bool:
        c = self.conn
        return self.options.plaintext.allows(tls=c.tls, remote_ip=c.peer_ip, local_ip=c.local_ip)

    @property
    def username(self) -> str:
        return self.account.username if self.account else ""

    def log_login(self, account: Account, method: str, suffix: str = "") -> None:
        c = self.conn
        self.login_log.info("Login: user=<%s>, method=%s, rip=%s, lip=%s%s%s", account.username, method,
                            c.peer_ip, c.local_ip, ", TLS" if c.tls else "", suffix)

    def log_aborted_login(self, reason: str, user: str, method: str) -> None:
        """The line fail2ban reads for a failed login (as Dovecot's login processes)."""
        c = self.conn
        self.login_log.info("Aborted login (%s): user=<%s>, method=%s, rip=%s, lip=%s%s", reason,
                            escape_for_log(user), method, c.peer_ip, c.local_ip, ", TLS" if c.tls else "")

    # --- the dispatcher's error mapping -----------------------------------------------------------
    async def dispatch(self, item: ItemT) -> None:
        """One item; the three error kinds become replies here, once (STYLE.md rule 3)."""
        try:
            await self.execute(item)
        except (ConnectionError, ConnectionClosed, asyncio.CancelledError):
            raise
        except Exception as exc:
            self.send(self._error_reply(exc))

    def _error_reply(self, exc: Exception) -> bytes:
        own = self.own_error_reply(exc)
        if own is not None:
            return own
        if isinstance(exc, ClientSyntaxError):
            self._errors += 1
            if self._errors >= self.options.error_limit:
                self.quit = True
                return self.dialect.too_many
            return self.dialect.syntax(exc.text)
        if isinstance(exc, TemporaryFailure):  # may heal: no traceback
            self.log.warning("%s: temporary failure: %s", self.username or "-", exc)
            return self.dialect.temporary
        if isinstance(exc, Refusal):
            return self.dialect.refusal(exc)
        self.log.error("error: internal error in %s command (user=<%s>)", self.dialect.name, self.username,
                       exc_info=exc)
        return self.dialect.internal

    # --- STARTTLS -------------------------------------------------------------------------------
    def request_starttls(self, *, active: str, unavailable: str) -> None:
        """The STARTTLS command's checks; the session upgrades once the command's OK is flushed.
        ``active``, ``unavailable``: the protocol's refusal texts."""
        if self.conn.tls:
            raise Refusal(active)
        if self.options.tls_context is None:
            raise Refusal(unavailable)
        self.starttls_requested = True

    async def start_tls(self) -> bool:
        """Called right after STARTTLS's OK is queued; no await may let input in before the
        upgrade. False: plaintext was pipelined after the command, and the connection is closed."""
        self.starttls_requested = False
        assert self.options.tls_context is not None
        pending = bool(self._input) or self.buffered() > 0
        await self.flush()
        try:
            if pending:
                raise PlaintextPending()
            await self.conn.start_tls(self.options.tls_context)
        except PlaintextPending:
            # RFC 2595 §4 / RFC 3207 §4.2: plaintext pipelined after STARTTLS must not be read as
            # if it came encrypted (CVE-2011-0411); we close rather than guess
            self.login_log.warning("Disconnected: %s with pipelined plaintext: rip=%s", self.dialect.starttls,
                                   self.conn.peer_ip)
            self.quit = True
            self.conn.close()
            return False
        return True
