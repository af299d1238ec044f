"""One ManageSieve session: the read loop, the dispatcher with state gating and the error budget,
and the one place where errors become responses (STYLE.md rules 2 and 3).

Implementation notes:
- Requests are parsed by ``managesieve.parser`` (pure); replies are buffered and written when the
  session waits for input, so pipelined requests get one write.
- Two states (RFC 5804 §2): before and after AUTHENTICATE; UNAUTHENTICATE goes back.
- A bad request is answered ``NO`` (RFC 5804 §1.3: there is no BAD); after
  ``protocol_error_limit`` of them the server says ``BYE`` and closes.
- Plaintext pipelined after STARTTLS closes the connection (RFC 5804 §2.2, the CVE-2011-0411
  class); after the handshake the capabilities are sent again (RFC 5804 §2.2).
- Script files are written in a thread (``store.sievedir``): fsync never stalls other sessions.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.errors import ClientSyntaxError, Refusal, TemporaryFailure
from pymailsrv.log import TRACE, escape_for_log, get_logger, session_id, trace_logger
from pymailsrv.managesieve import replies
from pymailsrv.managesieve.options import SieveOptions, SieveServices
from pymailsrv.managesieve.parser import BadRequest, Parser, Request
from pymailsrv.net.conn import ConnectionClosed, PlaintextPending
from pymailsrv.store.sievedir import ScriptError, SieveDir
from pymailsrv.types import Account

log = get_logger("managesieve")
login_log = get_logger("managesieve-login")
debug = logging.getLogger("pymailsrv.managesieve.session")
trace = trace_logger("managesieve")
# how many arguments the trace shows: the SASL mechanism, the script name, never a script's text
TRACED_ARGS = {"AUTHENTICATE": 1, "PUTSCRIPT": 1, "CHECKSCRIPT": 0}


class State(Enum):
    NONAUTH = "NONAUTH"
    AUTH = "AUTH"


NONAUTH = frozenset({State.NONAUTH})
AUTH = frozenset({State.AUTH})
ANY = frozenset(State)


class Connection(Protocol):
    peer_ip: str
    local_ip: str
    tls: bool
    last_activity: float

    async def read_some(self, max_bytes: int = 65536) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    async def start_tls(self, context: ssl.SSLContext, *, timeout: float = 30.0) -> None: ...

    def close(self) -> None: ...


Handler = Callable[["Session", Request], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SieveCommand:
    """A row of the command table: where the command is valid and what it advertises."""

    states: frozenset[State]
    handler: Handler
    # (capability name, value) it contributes to CAPABILITY, or a function of the session
    capability: Callable[[Session], tuple[str, str] | None] | None = None


def _traced(request: Request) -> str:
    """A request as the trace shows it: no credentials, no script text, one line."""
    shown = request.args[:TRACED_ARGS.get(request.name, len(request.args))]
    words = [a.decode("utf-8", "surrogateescape") if isinstance(a, bytes) else str(a) for a in shown]
    return " ".join([request.name, *(escape_for_log(w, 80) for w in words)])


class Session:
    def __init__(self, conn: Connection, options: SieveOptions, services: SieveServices,
                 commands: dict[str, SieveCommand]) -> None:
        self.conn = conn
        self.options = options
        self.services = services
        self.commands = commands
        self.state = State.NONAUTH
        self.account: Account | None = None
        self.scripts: SieveDir | None = None
        self.quit = False
        self.starttls_requested = False
        self._parser = Parser(options.max_line_length, options.quota.max_script_size)
        self._requests: deque[Request | BadRequest] = deque()
        self._out: list[bytes] = []
        self._errors = 0
        self.tracing = trace.isEnabledFor(TRACE)
        self.idle = False

    # --- output and input ---------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.tracing:
            trace.log(TRACE, "S: %s", data[:200].partition(b"\r\n")[0].decode("utf-8", "replace"))
        self._out.append(data)

    async def flush(self) -> None:
        if self._out:
            self.conn.write(b"".join(self._out))
            self._out.clear()
        await self.conn.drain()

    async def read_request(self) -> Request | BadRequest | None:
        """The next request (flushing replies first if we must wait); None at EOF."""
        while not self._requests:
            await self.flush()
            self.idle = True
            try:
                data = await self.conn.read_some()
            except ConnectionClosed:
                return None
            finally:
                self.idle = False
            self._requests.extend(self._parser.feed(data))
        return self._requests.popleft()

    def notify_shutdown(self) -> None:
        if self.idle:
            self.conn.write(replies.bye(replies.SHUTDOWN, replies.CODE_TRYLATER))

    # --- capabilities ---------------------------------------------------------------------------
    def plaintext_allowed(self) -> bool:
        c = self.conn
        return self.options.plaintext.allows(tls=c.tls, remote_ip=c.peer_ip, local_ip=c.local_ip)

    def capabilities(self) -> list[tuple[str, str]]:
        """RFC 5804 §1.7, derived from the command table (only what a row implements)."""
        caps: list[tuple[str, str]] = [("IMPLEMENTATION", replies.IMPLEMENTATION)]
        for spec in self.commands.values():
            cap = spec.capability(self) if spec.capability is not None else None
            if cap is not None:
                caps.append(cap)
        if self.options.max_redirects:
            caps.append(("MAXREDIRECTS", str(self.options.max_redirects)))  # RFC 5804 §1.7
        if self.account is not None:
            caps.append(("OWNER", self.account.username))  # RFC 5804 §1.7: after login
        caps.append(("VERSION", replies.VERSION))
        return caps

    def send_capabilities(self) -> None:
        for name, value in self.capabilities():
            self.send(replies.string(name) + (b" " + replies.string(value) if value else b"") + b"\r\n")

    # --- the loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        token = session_id.set(f"sieve-{id(self):x}")
        try:
            self.send_capabilities()
            self.send(replies.ok(replies.GREETING.format(mail_name=self.options.mail_name)))
            while not self.quit:
                request = await self.read_request()
                if request is None:
                    break
                await self.dispatch(request)
                if self.starttls_requested:
                    await self._start_tls()
            await self.flush()
        except (ConnectionError, ConnectionClosed, OSError) as exc:
            debug.debug("connection lost: %r", exc)
        finally:
            if self.account is not None:
                log.info("%s: Disconnected: %s", self.account.username, "Logged out" if self.quit else
                         "Connection closed")
            session_id.reset(token)
            self.conn.close()

    async def dispatch(self, request: Request | BadRequest) -> None:
        """One request: gate by state, run, map the error kinds to NO/BYE once."""
        try:
            if isinstance(request, BadRequest):
                raise ClientSyntaxError(request.reason)
            if self.tracing:
                trace.log(TRACE, "C: %s", _traced(request))
            spec = self.commands.get(request.name)
            if spec is None:
                raise ClientSyntaxError(replies.UNKNOWN_COMMAND)
            if self.state not in spec.states:
                raise ClientSyntaxError(replies.NOT_AUTHENTICATED if self.state is State.NONAUTH
                                        else replies.ALREADY_AUTHENTICATED)
            await spec.handler(self, request)
        except ClientSyntaxError as exc:
            self._errors += 1
            if self._errors >= self.options.error_limit:
                self.send(replies.bye(replies.TOO_MANY_ERRORS))
                self.quit = True
            else:
                self.send(replies.no(exc.text))
        except ScriptError as exc:
            self.send(replies.no(exc.text, exc.code))
        except AuthUnavailable:
            self.send(replies.no(replies.AUTH_TEMP, replies.CODE_TRYLATER))
        except TemporaryFailure as exc:
            log.warning("%s: temporary failure: %s", self.username or "-", exc)
            self.send(replies.no(replies.TEMP_FAILURE, replies.CODE_TRYLATER))
        except Refusal as exc:
            self.send(replies.no(exc.text, exc.code or ""))
        except (ConnectionError, ConnectionClosed, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("error: internal error in ManageSieve command (user=<%s>)", self.username)
            self.send(replies.no(replies.INTERNAL_ERROR, replies.CODE_TRYLATER))

    @property
    def username(self) -> str:
        return self.account.username if self.account else ""

    async def _start_tls(self) -> None:
        """Right after STARTTLS's OK is queued; no await may let input in before the upgrade."""
        self.starttls_requested = False
        assert self.options.tls_context is not None
        pending = bool(self._requests) or self._parser.pending() > 0
        await self.flush()
        try:
            if pending:
                raise PlaintextPending()
            await self.conn.start_tls(self.options.tls_context)
        except PlaintextPending:
            login_log.warning("Disconnected: STARTTLS with pipelined plaintext: rip=%s", self.conn.peer_ip)
            self.quit = True
            self.conn.close()
            return
        self.send_capabilities()  # RFC 5804 §2.2: the capabilities again, now under TLS
        self.send(replies.ok(replies.DONE))

    # --- login ----------------------------------------------------------------------------------
    def login(self, account: Account, method: str) -> None:
        self.account = account
        self.scripts = SieveDir(account.maildir, self.options.quota)
        self.state = State.AUTH
        login_log.info("Login: user=<%s>, method=%s, rip=%s, lip=%s%s", account.username, method,
                       self.conn.peer_ip, self.conn.local_ip, ", TLS" if self.conn.tls else "")

    def logout(self) -> None:
        """UNAUTHENTICATE (RFC 5804 §2.14): back to the state after the greeting."""
        if self.account is not None:
            log.info("%s: Unauthenticated", self.account.username)
        self.account, self.scripts, self.state = None, None, State.NONAUTH
