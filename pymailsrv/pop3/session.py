"""One POP3 session: the dispatcher with state gating (STYLE.md rule 2) and POP3's words for the
error kinds, on net.session's LineSession (the read loop, the error budget and the one place where
errors become replies, rule 3).

Implementation notes:
- Replies are buffered and written when the session is about to wait for input, so pipelined
  commands (RFC 2449 §6.6) get one write; a large reply (RETR) goes out as one write.
- The maildrop is a snapshot at login; deletions and \\Seen are applied only when the session
  ends: deletions only after QUIT (RFC 1939 §6), \\Seen also after a dropped connection.
- The exclusive POP3 lock is held from login until the maildrop ends, which QUIT completes
  before its reply (a client that reconnects at once finds the mailbox free); nothing is
  written to the socket while the store is being updated.
- Plaintext that arrived after the STLS line closes the connection instead of being read as if
  it were encrypted (RFC 2595 §4, the CVE-2011-0411 class).
- Idle sessions are closed by net's ConnectionRegistry (pop3_timeout, on the injected Clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from pymailsrv import meter
from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.log import TRACE, get_logger, session_id, trace_logger
from pymailsrv.net.conn import Connection as NetConnection
from pymailsrv.net.conn import ConnectionClosed
from pymailsrv.net.forward import BackendUnavailable, ClientInfo, Upstream
from pymailsrv.net.session import Dialect, LineSession, SessionConnection
from pymailsrv.pop3 import replies
from pymailsrv.pop3.maildrop import Maildrop
from pymailsrv.pop3.options import Pop3Options, Pop3Services
from pymailsrv.pop3.parser import TOO_LONG, Command, Line, LineSplitter, parse_command
from pymailsrv.store.base import DELETED, SEEN, Mailbox, MailboxInUse
from pymailsrv.types import Account

log = get_logger("pop3")
login_log = get_logger("pop3-login")
debug = logging.getLogger("pymailsrv.pop3.session")
trace = trace_logger("pop3")
SECRET_ARGS = frozenset({"PASS", "AUTH"})  # traced without their arguments (AUTH: mechanism only)

FLUSH_AT = 64 * 1024


class State(Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"


AUTH_STATE = frozenset({State.AUTHORIZATION})
TRANS_STATE = frozenset({State.TRANSACTION})
ANY_STATE = frozenset(State)


class Connection(SessionConnection, Protocol):
    """The shared session's byte pipe, plus what proxying and the idle timeout read."""

    peer_port: int
    local_port: int
    forwarded_by: str
    transport: asyncio.Transport | None


Handler = Callable[["Session", Command], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Pop3Command:
    """One row of the command table: where the command is valid, and what it advertises."""

    states: frozenset[State]
    handler: Handler
    # RFC 2449 CAPA line this command contributes ("" = none), or a function of the session
    capability: str | Callable[[Session], str] = ""


@dataclass(slots=True)
class Stats:
    top: int = 0
    top_bytes: int = 0
    retr: int = 0
    retr_bytes: int = 0


DIALECT = Dialect(
    component="pop3", name="POP3", starttls="STLS",
    syntax=replies.err,
    too_many=replies.err(replies.TOO_MANY_BAD),
    refusal=lambda exc: replies.err(exc.text, exc.code),
    temporary=replies.err(replies.TEMP_FAILURE, replies.CODE_SYS_TEMP),
    internal=replies.err(replies.INTERNAL_ERROR, replies.CODE_SYS_TEMP),
    shutdown=replies.err(replies.SHUTDOWN, replies.CODE_SYS_TEMP),  # as Dovecot, RFC 3206 [SYS/TEMP]
)


class Session(LineSession[Connection, Pop3Options, Line]):
    dialect = DIALECT

    def __init__(self, conn: Connection, options: Pop3Options, services: Pop3Services,
                 commands: dict[str, Pop3Command]) -> None:
        super().__init__(conn, options)
        self.services = services
        self.commands = commands
        self.state = State.AUTHORIZATION
        self.user_arg: str | None = None  # USER given, waiting for PASS
        self.mailbox: Mailbox | None = None
        self.maildrop: Maildrop | None = None
        self.seen: set[int] = set()  # UIDs RETR'd that were not \Seen yet
        self.stats = Stats()
        self._splitter = LineSplitter(options.max_line_length)
        self._locks = contextlib.AsyncExitStack()
        self._userip_key: tuple[str, str] | None = None
        self.read_ahead: dict[int, bytes] = {}  # uid -> stored bytes read ahead of RETR
        self.files_readable = True  # Mailbox.path() gives files we may read ahead in a thread
        self._ended = False  # end_maildrop ran
        self.upstream: Upstream | None = None  # proxied: the backend spliced to after login

    # --- the parser ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Line]:
        return self._splitter.feed(data)

    def buffered(self) -> int:
        return self._splitter.pending()

    def capabilities(self) -> list[str]:
        """RFC 2449 §5, derived from the command table: in TRANSACTION only what is usable there."""
        caps = []
        for spec in self.commands.values():
            if self.state is State.TRANSACTION and State.TRANSACTION not in spec.states:
                continue
            cap = spec.capability(self) if callable(spec.capability) else spec.capability
            if cap:
                caps.append(cap)
        caps.extend(replies.SERVER_CAPABILITIES)
        return caps

    def plaintext_allowed(self) -> bool:
        if self.conn.forwarded_by:  # the hop is from login_trusted_networks: secured (as Dovecot)
            return True
        return super().plaintext_allowed()

    # --- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        token = session_id.set(f"pop3-{id(self):x}")
        try:
            self.send(replies.ok(replies.GREETING.format(mail_name=self.options.mail_name)))
            while not self.quit:
                line = await self.next_input()
                if line is None:
                    break
                await self.dispatch(line)
                if self.starttls_requested:
                    await self.start_tls()
                elif self._outsize >= FLUSH_AT:
                    await self.flush()
            if self.quit:
                await self.flush()
            if self.upstream is not None:
                await self._proxied(self.upstream)
        except (ConnectionError, ConnectionClosed, OSError) as exc:
            debug.debug("connection lost: %r", exc)
        finally:
            await self._finish()
            session_id.reset(token)
            self.conn.close()

    async def execute(self, line: Line) -> None:
        """One command: parse, gate by state, run (``dispatch`` maps the errors to -ERR once)."""
        if line is TOO_LONG:
            raise ClientSyntaxError(replies.LINE_TOO_LONG)
        assert isinstance(line, bytes)
        cmd = parse_command(line)
        if self.tracing:
            shown = cmd.args[:1] if cmd.name == "AUTH" else () if cmd.name in SECRET_ARGS else cmd.args
            trace.log(TRACE, "C: %s", " ".join((cmd.name, *shown)))
        spec = self.commands.get(cmd.name)
        meter.count("pymailsrv_commands_total", "pop3", cmd.name if spec is not None else "unknown")
        if spec is None:
            raise ClientSyntaxError(replies.UNKNOWN_COMMAND)
        if self.state not in spec.states:
            text = replies.NOT_AUTHENTICATED if self.state is State.AUTHORIZATION \
                else replies.ALREADY_AUTHENTICATED
            raise ClientSyntaxError(text)
        await spec.handler(self, cmd)

    def own_error_reply(self, exc: Exception) -> bytes | None:
        if isinstance(exc, MailboxInUse):
            return replies.err(replies.IN_USE, replies.CODE_IN_USE)
        if isinstance(exc, AuthUnavailable):
            return replies.err(replies.AUTH_TEMP, replies.CODE_SYS_TEMP)
        return None

    # --- proxying (front nodes) ------------------------------------------------------------------
    async def forward(self, account: Account, password: str, method: str) -> bool:
        """A front node: log in to the user's backend and relay its +OK; the session is then
        spliced to it (``_proxied``). False: this node serves the user."""
        forwarder = self.services.forwarder
        if forwarder is None:
            return False
        c = self.conn
        client = ClientInfo(c.peer_ip, c.peer_port, c.local_ip, c.local_port, f"pop3-{id(self):x}")
        key = (account.username, c.peer_ip)
        if not await self.services.userip.open(*key, self.options.userip_limit):
            raise Refusal(replies.USERIP_LIMIT.format(limit=self.options.userip_limit),
                          code=replies.CODE_IN_USE)
        try:
            upstream = await forwarder.open("pop3", account.username, password, client)
        except BackendUnavailable:
            self.services.userip.close(*key)
            raise Refusal(replies.BACKEND_UNAVAILABLE, code=replies.CODE_SYS_TEMP, temporary=True) from None
        except BaseException:
            self.services.userip.close(*key)
            raise
        if upstream is None:
            self.services.userip.close(*key)
            return False
        self._userip_key = key
        self.account, self.upstream, self.quit = account, upstream, True
        self.send(upstream.reply + replies.CRLF)
        self.log_login(account, method, ", proxy")
        return True

    async def _proxied(self, upstream: Upstream) -> None:
        """Bytes both ways until one side closes; a backend gone without answering QUIT (killed,
        crashed) leaves the client a temporary failure."""
        unread = b"".join(line + replies.CRLF for line in self._input if isinstance(line, bytes))
        self._input.clear()
        assert isinstance(self.conn, NetConnection)
        ended = await upstream.splice(self.conn, unread + self._splitter.take_buffered())
        last = upstream.client_tail.rstrip(b"\r\n").rpartition(b"\n")[2].upper()
        if ended == "backend" and not last.startswith(b"QUIT") and not upstream.backend_tail.startswith(b"-ERR"):
            self.conn.write(replies.err(replies.BACKEND_GONE, replies.CODE_SYS_TEMP))
            login_log.info("proxy(%s): disconnecting %s (backend %s closed the connection)", self.username,
                           self.conn.peer_ip, upstream.backend)

    # --- login and the end of the session -----------------------------------------------------
    async def login(self, account: Account, method: str) -> None:
        """Take the POP3 lock, snapshot INBOX, enter TRANSACTION (RFC 1939 §4)."""
        key = (account.username, self.conn.peer_ip)
        if not await self.services.userip.open(*key, self.options.userip_limit):
            raise Refusal(replies.USERIP_LIMIT.format(limit=self.options.userip_limit),
                          code=replies.CODE_IN_USE)
        try:
            await self._locks.enter_async_context(self.services.store.exclusive(account))
            mailbox = await self.services.store.open(account, "INBOX")
            self._locks.push_async_callback(mailbox.close)
            await mailbox.sync()
        except BaseException:
            self.services.userip.close(*key)
            await self._locks.aclose()
            raise
        self._userip_key = key
        self.account, self.mailbox, self.user_arg = account, mailbox, None
        self.maildrop = Maildrop(mailbox.messages(), mailbox.uidvalidity, self.options.uidl_format,
                                 hide_deleted=self.options.hide_deleted)
        self.state = State.TRANSACTION
        self.log_login(account, method)

    async def update(self) -> bool:
        """The UPDATE state (RFC 1939 §6): expunge what DELE marked; False if that failed.
        A message another session expunged meanwhile is gone already, which is success."""
        assert self.mailbox is not None and self.maildrop is not None
        uids = self.maildrop.deleted_uids()
        if not uids:
            return True
        try:
            await self.mailbox.set_flags(uids, [DELETED], "add")
            await self.mailbox.expunge(uids)
        except Exception:
            log.exception("%s: expunge failed", self.username)
            return False
        return True

    async def end_maildrop(self, *, quit: bool) -> bool:
        """Leave TRANSACTION once: expunge (QUIT only), mark RETR'd messages \\Seen, log, and
        release the POP3 lock, all before QUIT's reply, so a client that reconnects at once
        finds the mailbox free. Returns False if the expunge failed."""
        if self.mailbox is None or self.maildrop is None or self._ended:
            return True
        self._ended = True
        expunged = await self.update() if quit else True
        seen = sorted(self.seen.difference(self.maildrop.deleted_uids()))
        if seen:
            try:
                await self.mailbox.set_flags(seen, [SEEN], "add")
            except Exception:
                log.exception("%s: cannot mark messages seen", self.username)
        s = self.stats
        _, size = self.maildrop.stat()
        log.info("%s: Disconnected: %s top=%d/%d, retr=%d/%d, del=%d/%d, size=%d", self.username,
                 "Logged out" if quit else "Connection closed", s.top, s.top_bytes, s.retr, s.retr_bytes,
                 len(self.maildrop.deleted_uids()) if quit else 0, len(self.maildrop), size)
        await self._release()
        return expunged

    async def _release(self) -> None:
        if self._userip_key is not None:
            self.services.userip.close(*self._userip_key)
            self._userip_key = None
        with contextlib.suppress(Exception):
            await self._locks.aclose()

    async def _finish(self) -> None:
        await self.end_maildrop(quit=False)
        await self._release()
