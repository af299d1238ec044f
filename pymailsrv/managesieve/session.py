"""One ManageSieve session: the dispatcher with state gating (STYLE.md rule 2) and ManageSieve's
words for the error kinds, on net.session's LineSession (the read loop, the error budget and the
one place where errors become responses, rule 3).

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.log import TRACE, escape_for_log, get_logger, session_id, trace_logger
from pymailsrv.managesieve import replies
from pymailsrv.managesieve.options import SieveOptions, SieveServices
from pymailsrv.managesieve.parser import BadRequest, Parser, Request, unparse
from pymailsrv.net.conn import Connection as NetConnection
from pymailsrv.net.conn import ConnectionClosed
from pymailsrv.net.forward import BackendUnavailable, ClientInfo, Upstream
from pymailsrv.net.session import Dialect, LineSession, SessionConnection
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


class Connection(SessionConnection, Protocol):
    """The shared session's byte pipe, plus what proxying reads."""

    peer_port: int
    local_port: int
    forwarded_by: str
    transport: asyncio.Transport | None


Incoming = Request | BadRequest  # what the parser yields

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


DIALECT = Dialect(
    component="managesieve", name="ManageSieve", starttls="STARTTLS",
    syntax=replies.no,  # RFC 5804 §1.3: there is no BAD
    too_many=replies.bye(replies.TOO_MANY_ERRORS),
    refusal=lambda exc: replies.no(exc.text, exc.code or ""),
    temporary=replies.no(replies.TEMP_FAILURE, replies.CODE_TRYLATER),
    internal=replies.no(replies.INTERNAL_ERROR, replies.CODE_TRYLATER),
    shutdown=replies.bye(replies.SHUTDOWN, replies.CODE_TRYLATER),
)


class Session(LineSession[Connection, SieveOptions, Incoming]):
    dialect = DIALECT

    def __init__(self, conn: Connection, options: SieveOptions, services: SieveServices,
                 commands: dict[str, SieveCommand]) -> None:
        super().__init__(conn, options)
        self.services = services
        self.commands = commands
        self.state = State.NONAUTH
        self.scripts: SieveDir | None = None
        self.upstream: Upstream | None = None  # proxied: the backend spliced to after login
        self._parser = Parser(options.max_line_length, options.quota.max_script_size)

    # --- the parser ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Request | BadRequest]:
        return self._parser.feed(data)

    def buffered(self) -> int:
        return self._parser.pending()

    # --- capabilities ---------------------------------------------------------------------------
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
                request = await self.next_input()
                if request is None:
                    break
                await self.dispatch(request)
                if self.starttls_requested and await self.start_tls():
                    self.send_capabilities()  # RFC 5804 §2.2: the capabilities again, now under TLS
                    self.send(replies.ok(replies.DONE))
            await self.flush()
            if self.upstream is not None:
                await self._proxied(self.upstream)
        except (ConnectionError, ConnectionClosed, OSError) as exc:
            debug.debug("connection lost: %r", exc)
        finally:
            if self.account is not None:
                log.info("%s: Disconnected: %s", self.account.username, "Logged out" if self.quit else
                         "Connection closed")
            session_id.reset(token)
            self.conn.close()

    async def execute(self, request: Request | BadRequest) -> None:
        """One request: gate by state, run (``dispatch`` maps the errors to NO/BYE once)."""
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

    def own_error_reply(self, exc: Exception) -> bytes | None:
        if isinstance(exc, ScriptError):
            return replies.no(exc.text, exc.code)
        if isinstance(exc, AuthUnavailable):
            return replies.no(replies.AUTH_TEMP, replies.CODE_TRYLATER)
        return None

    def plaintext_allowed(self) -> bool:
        if self.conn.forwarded_by:  # the hop is from login_trusted_networks: secured (as Dovecot)
            return True
        return super().plaintext_allowed()

    # --- proxying (front nodes) ------------------------------------------------------------------
    async def forward(self, account: Account, password: str, method: str) -> bool:
        """A front node: log in to the user's backend and relay its OK; the session is then
        spliced to it (``_proxied``). False: this node serves the user."""
        forwarder = self.services.forwarder
        if forwarder is None:
            return False
        c = self.conn
        client = ClientInfo(c.peer_ip, c.peer_port, c.local_ip, c.local_port, f"sieve-{id(self):x}")
        try:
            upstream = await forwarder.open("sieve", account.username, password, client)
        except BackendUnavailable:
            raise Refusal(replies.BACKEND_UNAVAILABLE, code=replies.CODE_TRYLATER, temporary=True) from None
        if upstream is None:
            return False
        self.account, self.upstream, self.quit = account, upstream, True
        self.send(upstream.reply + b"\r\n")
        self.log_login(account, method, ", proxy")
        return True

    async def _proxied(self, upstream: Upstream) -> None:
        """Bytes both ways until one side closes (requests read past the login go first); a
        backend gone without a BYE or a LOGOUT (killed, crashed) leaves the client a BYE (TRYLATER)."""
        unread = b"".join(unparse(r) + b"\r\n" for r in self._input if isinstance(r, Request))
        self._input.clear()
        assert isinstance(self.conn, NetConnection)
        ended = await upstream.splice(self.conn, unread + self._parser.take_buffered())
        said = upstream.backend_tail.rstrip(b"\r\n").rpartition(b"\n")[2].upper()
        asked = upstream.client_tail.rstrip(b"\r\n").rpartition(b"\n")[2].upper()
        if ended == "backend" and not said.startswith(b"BYE") and not asked.startswith(b"LOGOUT"):
            self.conn.write(replies.bye(replies.BACKEND_GONE, replies.CODE_TRYLATER))
            login_log.info("proxy(%s): disconnecting %s (backend %s closed the connection)", self.username,
                           self.conn.peer_ip, upstream.backend)

    # --- login ----------------------------------------------------------------------------------
    def login(self, account: Account, method: str) -> None:
        self.account = account
        self.scripts = SieveDir(account.maildir, self.options.quota)
        self.state = State.AUTH
        self.log_login(account, method)

    def logout(self) -> None:
        """UNAUTHENTICATE (RFC 5804 §2.14): back to the state after the greeting."""
        if self.account is not None:
            log.info("%s: Unauthenticated", self.account.username)
        self.account, self.scripts, self.state = None, None, State.NONAUTH
