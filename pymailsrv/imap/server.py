"""The IMAP4rev1 server: one command loop per connection, one dispatcher, errors mapped once.

Implementation notes:
- The loop reads whatever the socket has, feeds the pure parser and runs complete commands one
  at a time (pipelined commands wait in the parser's bounded buffer; the transport stops reading
  when our buffer is full, so 100,000 pipelined commands use bounded memory).
- ``dispatch`` is the only place that turns exceptions into responses (STYLE.md rule 3):
  ClientSyntaxError → BAD (counts towards protocol_error_limit), Refusal → NO [code],
  AuthUnavailable → NO [UNAVAILABLE], anything else → NO [SERVERBUG] with the traceback logged.
- Untagged mailbox updates are queued after each command in the selected state; EXPUNGE only
  after commands other than FETCH/STORE/SEARCH (RFC 3501 §7.4.1).
- CAPABILITY is computed from the command table: nothing is advertised that isn't there.
- Before login a command may hold PRE_LOGIN_LIMIT bytes in all, literals included, as Dovecot's
  imap-login (IMAP_LOGIN_MAX_LINE_LENGTH): ten unauthenticated connections then cost
  kilobytes, not ten announced 10 MB literals. A larger synchronizing literal gets a tagged BAD
  without "+"; a larger LITERAL+ one a BAD and "* BYE" (RFC 7888 §4: its bytes are on the way).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from dataclasses import dataclass, field

from pymailsrv import meter
from pymailsrv.auth import sasl
from pymailsrv.auth.base import Authenticator, AuthUnavailable, SessionCounter, UserIpCounter
from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.imap import wire
from pymailsrv.imap.cache import ContentCache
from pymailsrv.imap.commands import COMMANDS
from pymailsrv.imap.commands.base import Done
from pymailsrv.imap.grammar import Command
from pymailsrv.imap.parser import Bad, CommandParser, Limits, NeedContinuation
from pymailsrv.imap.session import AUTH, LOGOUT, NOT_AUTH, SELECTED, Session
from pymailsrv.log import TRACE, get_logger, session_id, trace_logger
from pymailsrv.net import Connection, ConnectionClosed, ConnectionRegistry
from pymailsrv.net.forward import Forwarder, Upstream
from pymailsrv.net.networks import Network
from pymailsrv.store.base import (
    FolderExists,
    FolderNotFound,
    InvalidFolderName,
    MailboxGone,
    MailStore,
    QuotaExceeded,
)

log = get_logger("imap")
login_log = get_logger("imap-login")
trace = trace_logger("imap")  # command names only: arguments (credentials, bodies) never logged
_ids = itertools.count(1)

_CODES: tuple[tuple[type[Exception], str], ...] = (
    (FolderNotFound, "NONEXISTENT"), (FolderExists, "ALREADYEXISTS"), (QuotaExceeded, "OVERQUOTA"),
    (InvalidFolderName, "CANNOT"),
)
BASE_CAPS = ("IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE")
# LOGIN with a long password or AUTHENTICATE PLAIN with SASL-IR needs a few hundred bytes.
PRE_LOGIN_LIMIT = 8192
PRE_LOGIN = Limits(max_line=PRE_LOGIN_LIMIT, max_literal=PRE_LOGIN_LIMIT, max_command=PRE_LOGIN_LIMIT,
                   sync_refusal="BAD", id_command=64 * 1024)


@dataclass
class ImapConfig:
    max_line: int = 65536
    max_literal: int = 64 * 1024 * 1024
    idle_notify: float = 120.0
    timeout: float = 1800.0
    plaintext: PlaintextRule = field(default_factory=PlaintextRule)  # disable_plaintext_auth
    error_limit: int = 10
    max_userip: int = 20
    max_ip_connections: int = 0  # per client IP, before and after login (0 = no limit)
    ip_limit_exceptions: list[Network] = field(default_factory=list)
    hostname: str = "localhost"
    # a folder is re-read at least this often even without a change notice (writers in other
    # processes); NOOP, CHECK and IDLE always look
    sync_interval: float = 1.0
    cache_bytes: int = 32 * 1024 * 1024  # process-wide cache of headers/ENVELOPE/BODYSTRUCTURE
    idle_poll_max: float = 30.0  # longest single wait inside IDLE (the store wakes us sooner)

    @classmethod
    def from_settings(cls, settings: Settings) -> ImapConfig:
        return cls(
            max_line=settings.get_size("imap_max_line_length"),
            max_literal=settings.get_size("imap_max_literal_size"),
            idle_notify=settings.get_seconds("imap_idle_notify_interval"),
            timeout=settings.get_seconds("imap_timeout"),
            plaintext=PlaintextRule.from_settings(settings),
            error_limit=settings.get_int("protocol_error_limit"),
            max_userip=settings.get_int("mail_max_userip_connections"),
            max_ip_connections=settings.get_int("login_max_ip_connections"),
            ip_limit_exceptions=settings.get_networks("login_ip_limit_exceptions"),
            hostname=settings.get_str("myhostname") or "localhost",
        )


class ImapServer:
    """Serves IMAP sessions; ``handle`` is the net.start_server handler."""

    def __init__(self, config: ImapConfig, authenticator: Authenticator, store: MailStore, *,
                 tls: ssl.SSLContext | None = None, clock: Clock | None = None,
                 user_ip: SessionCounter | None = None, forwarder: Forwarder | None = None) -> None:
        self.config = config
        self.auth = authenticator
        self.store = store
        self.tls = tls
        self.clock: Clock = clock or SystemClock()
        self.user_ip: SessionCounter = user_ip if user_ip is not None else UserIpCounter()
        self.forwarder = forwarder
        self.sessions: set[Session] = set()
        self.cache = ContentCache(config.cache_bytes)
        # for every listener of this server: idle timeout and the per-IP limit
        self.registry = ConnectionRegistry(self.clock, idle_timeout=config.timeout,
                                           max_per_ip=config.max_ip_connections, exempt=config.ip_limit_exceptions)
        self.logged_in_limits = Limits(max_line=config.max_line, max_literal=config.max_literal)

    # --- capabilities ------------------------------------------------------------------------
    def plaintext_ok(self, s: Session) -> bool:
        c = s.conn
        if c.forwarded_by:  # the hop is from login_trusted_networks: secured (as Dovecot)
            return True
        return self.config.plaintext.allows(tls=c.tls, remote_ip=c.peer_ip, local_ip=c.local_ip)

    def capabilities(self, s: Session) -> list[str]:
        caps = list(BASE_CAPS)
        if s.state == NOT_AUTH:
            if self.tls is not None and not s.conn.tls:
                caps.append("STARTTLS")
            plaintext = self.plaintext_ok(s)
            caps += [f"AUTH={name}" for name in sasl.offered(plaintext)]
            if not plaintext:
                caps.append("LOGINDISABLED")  # RFC 3501 §6.2.3: LOGIN sends the password itself
            return caps
        return caps + _LOGGED_IN_CAPS


    # --- connection --------------------------------------------------------------------------
    async def handle(self, conn: Connection) -> None:
        meter.count("pymailsrv_connections_total", "imap")
        if conn.over_limit:
            self.refuse(conn)
            return
        meter.gauge_add("pymailsrv_sessions", "imap")
        s = Session(conn, CommandParser(PRE_LOGIN), cache=self.cache)
        s.sid = f"{next(_ids):X}"
        session_id.set(s.sid)
        conn.timeout_message = b"* BYE " + wire.BYE_TIMEOUT.encode() + b"\r\n"
        conn.shutdown_message = b"* BYE " + wire.BYE_SHUTDOWN.encode() + b"\r\n"
        self.sessions.add(s)
        log.info("connect from [%s]%s", conn.peer_ip, ", TLS" if conn.tls else "")
        reason = "Logged out"
        try:
            s.untagged("OK [CAPABILITY " + " ".join(self.capabilities(s)) + "] " + wire.GREETING)
            await s.flush()
            reason = await self.command_loop(s)
            if s.upstream is not None:
                reason = await self.proxied(s, s.upstream)
        except ConnectionClosed:
            reason = "Connection closed"
        finally:
            meter.gauge_add("pymailsrv_sessions", "imap", n=-1)
            self.sessions.discard(s)
            await self.end_session(s)
            who = f"user=<{s.account.username}>, " if s.account else ""
            log.info("Disconnected: %s %srip=%s, in=%d, out=%d", reason, who, conn.peer_ip,
                     s.bytes_in, s.bytes_out)

    async def proxied(self, s: Session, upstream: Upstream) -> str:
        """The rest of a proxied session: bytes both ways until one side closes. A backend that
        goes away without "* BYE" (killed, crashed, network) leaves the client a temporary
        failure, never a silent close."""
        await s.flush()
        ended = await upstream.splice(s.conn, s.parser.take_buffered())
        if ended == "backend" and b"* BYE " not in upstream.backend_tail:
            s.conn.write(b"* BYE " + wire.BACKEND_GONE.encode() + b"\r\n")
            login_log.info("proxy(%s): disconnecting %s (backend %s closed the connection)",
                           s.account.username if s.account else "", s.conn.peer_ip, upstream.backend)
            return "Disconnected by server"
        return {"client": "Connection closed", "timeout": "Disconnected for inactivity"}.get(ended, "Logged out")

    def refuse(self, conn: Connection) -> None:
        """Over login_max_ip_connections: what Dovecot's login processes do when a limit sends a
        client away (BYE, then the "Disconnected" line fail2ban reads)."""
        conn.write(b"* BYE " + wire.IP_LIMIT.format(limit=self.config.max_ip_connections).encode() + b"\r\n")
        login_log.info("Disconnected: Maximum number of connections from IP exceeded (no auth attempts in 0 secs): "
                       "user=<>, rip=%s, lip=%s%s", conn.peer_ip, conn.local_ip, ", TLS" if conn.tls else "")

    async def end_session(self, s: Session) -> None:
        try:
            await s.close_mailbox()
        except Exception:
            log.exception("closing mailbox")
        if s.account is not None:
            self.user_ip.close(s.account.username, s.conn.peer_ip)

    async def command_loop(self, s: Session) -> str:
        conn = s.conn
        while s.state != LOGOUT:
            event = s.parser.next()
            if event is None:
                await s.flush()
                try:
                    data = await conn.read_some()
                except ConnectionClosed:
                    if s.parser.in_command:
                        return "Connection closed in the middle of a command"
                    return "Disconnected for inactivity" if conn.timed_out else "Connection closed"
                s.bytes_in += len(data)
                s.parser.feed(data)
                continue
            if isinstance(event, NeedContinuation):
                s.write(b"+ OK\r\n")
                await s.flush()
                continue
            if isinstance(event, Bad):
                if self.bad(s, event.tag, f"[{event.code}] {event.text}" if event.code else event.text,
                            kind=event.kind) or event.fatal:
                    if event.fatal:
                        s.untagged("BYE " + event.text)
                    await s.flush()
                    return "Protocol error"
                continue
            await self.dispatch(s, event)
        await s.flush()
        return "Selected mailbox was deleted" if s.mailbox_lost else "Logged out"

    def bad(self, s: Session, tag: str, text: str, kind: str = "BAD") -> bool:
        """Answer BAD/NO; True when the error budget is spent (the session is then closed)."""
        s.write(f"{tag} {kind} {text}\r\n".encode("utf-8", "replace"))
        if kind != "BAD":
            return False
        s.errors += 1
        if s.errors >= self.config.error_limit:
            s.untagged("BYE " + wire.TOO_MANY_ERRORS)
            s.state = LOGOUT
            return True
        return False

    # --- the dispatcher ---------------------------------------------------------------------
    async def dispatch(self, s: Session, cmd: Command) -> None:
        spec = COMMANDS.get(cmd.name)
        meter.count("pymailsrv_commands_total", "imap", cmd.name if spec is not None else "unknown")
        if spec is None:
            self.bad(s, cmd.tag, wire.UNKNOWN_COMMAND)
            return
        if s.state not in spec.states:
            self.bad(s, cmd.tag, wire.WRONG_STATE)
            return
        s.uid_command = cmd.uid
        if trace.isEnabledFor(TRACE):
            trace.log(TRACE, "C: %s %s", cmd.tag, cmd.name)
        try:
            done = await spec.handler(self, s, cmd)
            if s.state != NOT_AUTH:
                s.parser.limits = self.logged_in_limits
            if s.state == SELECTED:
                await s.sync(allow_expunge=spec.expunge_ok, force=spec.sync, now=self.clock.monotonic(),
                             max_age=self.config.sync_interval)
            done = done or Done()
            code = f"[{done.code}] " if done.code else ""
            s.errors = 0  # the budget counts consecutive errors (as Dovecot does)
            if not done.sent:
                s.write(f"{cmd.tag} OK {code}{done.text}\r\n".encode())
        except ClientSyntaxError as exc:
            self.bad(s, cmd.tag, exc.text)
        except Refusal as exc:
            code = exc.code or next((c for t, c in _CODES if isinstance(exc, t)), "")
            if exc.temporary and not code:
                code = "UNAVAILABLE"
            s.write(f"{cmd.tag} NO {'[' + code + '] ' if code else ''}{exc.text}\r\n".encode("utf-8", "replace"))
            if isinstance(exc, MailboxGone):  # only the selected folder's calls raise it
                s.mailbox_lost = True
        except AuthUnavailable:
            s.write(f"{cmd.tag} NO {wire.AUTH_UNAVAILABLE}\r\n".encode())
        except (ConnectionClosed, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("%s command failed for %s", cmd.name,
                          s.account.username if s.account else f"[{s.conn.peer_ip}]")
            s.write(f"{cmd.tag} NO {wire.SERVERBUG}\r\n".encode())
        finally:
            s.uid_command = False
        if s.mailbox_lost:
            s.untagged("BYE " + wire.MAILBOX_GONE)
            s.state = LOGOUT


def _logged_in_caps() -> list[str]:
    """What the command table adds once logged in (computed once: the table is fixed)."""
    caps: list[str] = []
    for name, spec in COMMANDS.items():
        if name in ("STARTTLS", "AUTHENTICATE", "LOGIN"):
            continue
        caps += [c for c in spec.caps if c not in caps and c not in BASE_CAPS]
    return caps


_LOGGED_IN_CAPS = _logged_in_caps()


__all__ = ["AUTH", "SELECTED", "ImapConfig", "ImapServer"]
