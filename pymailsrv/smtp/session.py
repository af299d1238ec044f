"""One SMTP connection: I/O, the command loop, the reply writer and the session state.

Implementation notes
- The socket is a ``net.Connection`` (the plumbing IMAP and POP3 use: an input buffer we own,
  flow control both ways, STARTTLS through the public ``loop.start_tls``), so SMTP needs no
  private attribute of asyncio or of an SMTP library. STARTTLS discards plaintext the client
  pipelined after the command (RFC 3207 §4.2), as Postfix does since CVE-2011-0411. The command
  loop, the command table, the replies and DATA reading are ours: Postfix's texts, a dispatch
  table, DATA scanned in large chunks (aiosmtpd's engine reads DATA line by line: ≈ 150 msg/s at
  100 KiB on these machines, shared/anchors/README.md).
- Errors are mapped to the wire once, in ``_run_command`` (STYLE.md rule 3): a Refusal carries its
  reply, TemporaryFailure answers 451 4.3.0, anything else 451 4.3.5 with the traceback in the log.
- Replies are collected and written when the input buffer holds no further complete command
  (RFC 2920 §3.1: a pipelined group gets its replies in one write).
- Nothing is queued unless the final dot was read; the 250 goes out only after ``Queue.submit``
  returned (the queue makes it durable).
- Every decision about the client and its messages is the message pipeline's (``check``): the
  session is the stages' Session (pipeline/base.py). A transaction that ends unfinished is
  reported to the stages (abort) before their next event or at the end of the session.
- Credentials are never logged: AUTH lines bypass the trace. Names a client supplied (SASL user
  names, HELO, addresses) are logged escaped (pymailsrv.log.escape_for_log).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable
from typing import Any

from pymailsrv.auth import sasl
from pymailsrv.errors import Refusal, TemporaryFailure
from pymailsrv.log import escape_for_log, get_logger, trace_logger
from pymailsrv.net.conn import Connection, ConnectionClosed
from pymailsrv.pipeline.base import Event, Origin, Transaction, Verdict
from pymailsrv.pipeline.message import Message
from pymailsrv.policy.base import SmtpState
from pymailsrv.smtp import replies as R
from pymailsrv.smtp.context import ListenerSpec, Services
from pymailsrv.smtp.wire import LINE_TOO_LONG, Line, LineBuffer, OverlongLine
from pymailsrv.types import Recipient

log = get_logger("smtpd")
debug = logging.getLogger("pymailsrv.smtp")
trace = trace_logger("smtp")

READ_SIZE = 256 * 1024
PEERNAME_TIMEOUT = 10.0

# The order Postfix prints command counts in its "disconnect from" line.
COUNTED = ("helo", "ehlo", "lhlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop",
           "vrfy", "etrn", "quit", "unknown")


class SmtpConnection(Connection):
    """The socket of one SMTP session; the session starts once the client is connected (after
    the TLS handshake on smtps)."""

    high_water = 2 * READ_SIZE  # the transport pauses reading beyond this many unread bytes
    session_class: type[SmtpSession]  # set below the class (LMTP serves its own subclass)

    def __init__(self, services: Services, listener: ListenerSpec) -> None:
        super().__init__(services.clock)
        self.services = services
        self.listener = listener
        self.session: SmtpSession | None = None
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.session = self.session_class(self.services, self.listener, self)
        self._task = asyncio.get_running_loop().create_task(self.session.run())

    def eof_received(self) -> bool | None:
        super().eof_received()
        # without TLS the replies to what came before the client's half-close still go out
        return not self.tls

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.session is not None:
            self.session.connection_lost()


class SmtpSession:
    def __init__(self, services: Services, listener: ListenerSpec, conn: SmtpConnection) -> None:
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self._timeout_duration = services.config.timeout
        self._timeout_handle: asyncio.TimerHandle | None = None
        self.svc = services
        self.cfg = services.config
        self.listener = listener
        self.lines = LineBuffer(self.cfg.max_line_length)
        self.state = SmtpState(client_address="", service=listener.service)
        self.client = "unknown[]"
        self.helo = ""
        self.extended = False
        self.tls_active = listener.implicit_tls
        self.tls_version = ""
        self.tls_cipher = ""
        self.tls_bits = 0
        self.sasl_method = ""
        self.sasl_username = ""
        self.txn: Transaction | None = None
        # what the pipeline's stages read of the session (pipeline.base.Session), and their state
        self.origin: Origin = listener.kind
        self.stage_data: dict[str, Any] = {}
        self.connect_refusal: Verdict | None = None
        self._stages_open = False  # the stages saw the connect (and get the close)
        self._aborted: Transaction | None = None  # to report to the stages before their next event
        self.errors = 0
        self.counts: dict[str, list[int]] = {}
        self.last_command = "CONNECT"
        self.closing = False
        self.lost = False
        self._conn_lost = False
        self._timed_out = False
        self._out: list[bytes] = []
        self._sleep_due = False
        self._limiter_ip = ""
        self._deadline = 0.0
        self.idle = False  # waiting for the next command (shutdown may close at once)

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.conn.transport

    # --- connection plumbing ------------------------------------------------------------------
    def connection_lost(self) -> None:
        self._conn_lost = True
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        # The command loop notices EOF on its next read; it is not cancelled mid-command, so a
        # message being queued is either fully queued or not at all.

    def _reset_timeout(self, duration: float | None = None) -> None:
        """smtpd_timeout as a deadline: moving it is one float store, the timer re-arms itself
        when it fires early (no new TimerHandle per read)."""
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        if self._timeout_handle is None:
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_cb)

    def _timeout_cb(self) -> None:
        if self.transport is None or self._conn_lost or self.closing:
            return
        if self.loop.time() < self._deadline:
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_cb)
            return
        self._timed_out = True
        log.info("timeout after %s from %s", self.last_command, self.client)
        self.reply(R.TIMEOUT.format(host=self.cfg.myhostname))
        self._write_out()
        self.closing = True
        self.transport.close()

    async def run(self) -> None:
        self._reset_timeout()
        try:
            if await self._admit():
                await self._serve()
        except Exception:
            log.exception("error: unexpected error in session with %s", self.client)
        finally:
            await self._finish()

    async def _admit(self) -> bool:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        ip, port = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)  # not on a UNIX socket
        if ip.startswith("::ffff:") and "." in ip:
            ip = ip[7:]
        self.state.client_address = ip
        self.state.client_port = port
        local = self.transport.get_extra_info("sockname") if self.transport else None
        if isinstance(local, tuple):
            self.state.server_address, self.state.server_port = str(local[0]), int(local[1])
        self.state.protocol = "SMTP"
        if self.cfg.peername_lookup and ip:
            await self._lookup_peername(ip)
        self.client = f"{self.state.client_name}[{ip}]"
        log.info("connect from %s", self.client)
        self.listener.sessions.add(self)
        if self.tls_active:
            self._note_tls()
        host = self.cfg.myhostname
        # mail that skips the restrictions (re-injected by the content filter; LMTP, whose client
        # is the MTA in front) is taken only from mynetworks; a UNIX socket's client is local
        if self.listener.kind in ("reinject", "lmtp") and ip and not self.cfg.in_mynetworks(ip):
            log.warning("%s: %s refused: not in mynetworks", self.client,
                        "reinjection" if self.listener.kind == "reinject" else "LMTP")
            self.reply(R.REINJECT_DENIED.format(host=host, ip=ip))
            return False
        limiter = self.svc.limiter
        if limiter is not None:
            verdict, count = await limiter.admit(ip)
            if verdict:
                log.warning("Connection %s limit exceeded: %d from %s for service %s",
                            "concurrency" if verdict == "count" else "rate", count,
                            self.client, self.listener.service)
                self.reply(R.TOO_MANY_CONNECTIONS.format(host=host, ip=ip))
                return False
            self._limiter_ip = ip
        self._stages_open = True
        decision = await self.check("connect")
        if decision.refused:
            self.connect_refusal = decision
        self.reply(R.GREETING.format(banner=self.cfg.banner))
        return True

    async def _lookup_peername(self, ip: str) -> None:
        """Postfix's client name: the PTR name if it resolves back to the address, else
        "unknown" (the unverified PTR name stays in reverse_client_name)."""
        try:
            name, _ = await asyncio.wait_for(
                self.loop.getnameinfo((ip, 0), socket.NI_NAMEREQD), PEERNAME_TIMEOUT)
            self.state.reverse_client_name = name
            infos = await asyncio.wait_for(self.loop.getaddrinfo(name, None), PEERNAME_TIMEOUT)
        except (OSError, TimeoutError, UnicodeError):
            return
        if any(info[4][0] == ip for info in infos):
            self.state.client_name = name

    def shutdown(self) -> None:
        """Server shutdown: an idle session gets 421 and is closed now; a busy one after its
        current command (a message being received is still queued and acknowledged)."""
        self.closing = True
        if self.idle and self.transport is not None and not self._conn_lost:
            self.reply(R.SHUTTING_DOWN.format(host=self.cfg.myhostname))
            self._write_out()
            self.transport.close()

    async def _finish(self) -> None:
        self.listener.sessions.discard(self)
        if self.svc.limiter is not None and self._limiter_ip:
            self.svc.limiter.release(self._limiter_ip)
        self._write_out()
        if self.lost and not self._timed_out:
            log.info("lost connection after %s from %s", self.last_command, self.client)
        log.info("disconnect from %s%s", self.client, self._count_summary())
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        await self._end_stages()

    def _count_summary(self) -> str:
        parts = []
        ok_total = [0, 0]
        for name in COUNTED:
            c = self.counts.get(name)
            if c is None:
                continue
            ok, total = c
            ok_total[0] += ok
            ok_total[1] += total
            parts.append(f" {name}={ok}" if ok == total else f" {name}={ok}/{total}")
        ok, total = ok_total
        parts.append(f" commands={ok}" if ok == total and total else f" commands={ok}/{total}")
        return "".join(parts)

    # --- the command loop -----------------------------------------------------------------------
    def command_table(self) -> dict[str, Any]:
        """The commands this session serves (smtp.commands.COMMANDS; LMTP has its own table)."""
        from pymailsrv.smtp.commands import COMMANDS

        return COMMANDS

    async def _serve(self) -> None:
        commands = self.command_table()
        while not self.closing:
            self.idle = True
            item = await self.next_line()
            self.idle = False
            if item is None:
                self.lost = not self.closing
                return
            if item is LINE_TOO_LONG:
                self.reply(R.LINE_TOO_LONG)
            else:
                assert isinstance(item, Line)
                if item.bare_lf and self.cfg.forbid_bare_newline == "yes":
                    self._refuse_bare_lf()
                    return
                await self._run_command(item.text, commands)
            if self.errors >= self.cfg.hard_error_limit and not self.closing:
                log.info("too many errors after %s from %s", self.last_command, self.client)
                self.reply(R.TOO_MANY_ERRORS.format(host=self.cfg.myhostname))
                self.closing = True

    def _refuse_bare_lf(self) -> None:
        log.info("warning: disconnecting %s for sending bare <LF> after %s", self.client,
                 self.last_command)
        self.reply(R.BARE_LF.format(host=self.cfg.myhostname))
        self.closing = True

    async def _run_command(self, text: bytes, commands: dict[str, Any]) -> None:
        verb_b, _, arg_b = text.strip(b" \t").partition(b" ")
        verb = verb_b.decode("ascii", "replace").upper()
        spec = commands.get(verb)
        # RFC 5321 §2.3.8: CR only as part of CRLF, and no NUL. A line holding either is not a
        # command; nothing of it runs, so the session may go on (unlike a bare LF, whose line
        # framing is in doubt: 521 and close). 500 5.5.2 is Postfix's answer for a command line
        # it cannot parse.
        forbidden = b"\0" in text or b"\r" in text
        if spec is None or forbidden:
            self._count("unknown", False)
            self.last_command = "UNKNOWN"
            trace.log(5, "%s > %r", self.client, text[:200])
            self.reply(R.BAD_SYNTAX if forbidden or not text.strip() else R.UNKNOWN_COMMAND)
            return
        if verb != "AUTH":
            trace.log(5, "%s > %r", self.client, text[:1000])
        self.last_command = verb
        if not self.extended and self.lines.pending:
            # commands sent ahead before PIPELINING was advertised (RFC 2920 §3.1);
            # reject_unauth_pipelining acts on it
            self.state.pipelining_violation = True
        self._reset_timeout()
        arg = arg_b.decode("utf-8", "surrogateescape").strip()
        before = len(self._out), self.errors
        try:
            await self._gated(spec, arg)
        except Refusal as exc:
            self.reply(exc.text)
        except TemporaryFailure:
            debug.warning("temporary failure in %s", verb, exc_info=True)
            self.reply(R.TEMPORARY_LOOKUP_FAILURE)
        except Exception:
            log.exception("error: %s command from %s failed", verb, self.client)
            self.reply(R.SERVER_CONFIG_ERROR)
        self._count(verb.lower(), self.errors == before[1] and not self.lost)

    async def _gated(self, spec: Any, arg: str) -> None:
        if self.tls_required() and not spec.before_tls:
            self.reply(R.TLS_REQUIRED)
            return
        if spec.policy_gated and self.connect_refusal is not None:
            self.reply(self.connect_refusal.reply())
            return
        await spec.handler(self, arg)

    def _count(self, name: str, ok: bool) -> None:
        c = self.counts.setdefault(name if name in COUNTED else "unknown", [0, 0])
        c[1] += 1
        if ok:
            c[0] += 1

    # --- input ----------------------------------------------------------------------------------
    async def read_chunk(self) -> bytes:
        """Bytes from the socket (b"" at EOF or on a connection error); flushes replies first."""
        await self.flush()
        try:
            data = await self.conn.read_some(READ_SIZE)
        except (ConnectionClosed, ConnectionError, OSError):
            return b""
        if data:
            self._reset_timeout()
        return data

    async def next_line(self) -> Line | OverlongLine | None:
        while True:
            item = self.lines.next_line()
            if item is not None:
                return item
            data = await self.read_chunk()
            if not data:
                return None
            self.lines.feed(data)

    # --- output ---------------------------------------------------------------------------------
    def reply(self, text: str) -> None:
        """Queue one reply (may be multi-line: lines joined by CRLF); counts errors."""
        code = text[:3]
        if code[:1] in ("4", "5") and code != "421":
            self.errors += 1
            if self.errors >= self.cfg.soft_error_limit:
                self._sleep_due = True
        self._out.append(text.encode("utf-8", "surrogateescape") + b"\r\n")
        trace.log(5, "%s < %s", self.client, text)

    def _write_out(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        if not self._conn_lost:
            self.conn.write(data)

    async def flush(self) -> None:
        if self._sleep_due:
            self._sleep_due = False
            await self.svc.clock.sleep(self.cfg.error_sleep_time)
        self._write_out()
        try:
            await self.conn.drain()  # returns at once unless the client is not reading
        except (ConnectionClosed, ConnectionError, OSError):
            pass

    # --- state helpers used by the command handlers -------------------------------------------
    def tls_required(self) -> bool:
        if self.tls_active:
            return False
        kind = self.listener.kind
        return kind == "submission" or (kind == "smtpd" and self.cfg.tls_security_level == "encrypt")

    def starttls_offered(self) -> bool:
        return (not self.tls_active and self.listener.tls is not None and self.listener.kind
                in ("smtpd", "submission") and self.cfg.tls_security_level != "none")

    def sasl_mechanisms(self) -> list[str]:
        """What AUTH offers here (EHLO lists it): nothing where this listener takes no AUTH; the
        plaintext mechanisms only where disable_plaintext_auth allows (auth/plaintext.py)."""
        if self.svc.authenticator is None or self.listener.kind == "reinject":
            return []
        if self.listener.is_submission:
            enabled = self.tls_active
        else:
            enabled = self.cfg.sasl_auth_enable and (self.tls_active or not self.cfg.tls_auth_only)
        if not enabled:
            return []
        return sasl.offered(self.cfg.plaintext.allows(tls=self.tls_active, remote_ip=self.state.client_address,
                                                      local_ip=self.state.server_address))

    def reset_transaction(self, *, aborted: bool = True) -> None:
        """Forget the transaction; one that ends unfinished (``aborted``) is reported to the
        stages before their next event."""
        if aborted and self.txn is not None and self.svc.pipeline.wants("abort"):
            self._aborted = self.txn
        self.txn = None
        self.state.sender = None
        self.state.recipient = ""
        self.state.recipient_count = 0
        self.state.size = 0
        self.state.queue_id = ""

    def reset_helo(self) -> None:
        self.helo = ""
        self.extended = False
        self.state.helo_name = ""
        self.reset_transaction()

    def check(self, event: Event, txn: Transaction | None = None, rcpt: Recipient | None = None,
              msg: Message | None = None) -> Awaitable[Verdict]:
        """The message pipeline's decision at ``event`` (pipeline/runner.py: ``Pipeline.run``)."""
        if self._aborted is not None:
            return self._check_after_abort(event, txn, rcpt, msg)
        return self.svc.pipeline.run(event, self, txn, rcpt, msg)  # no coroutine of our own per event

    async def _check_after_abort(self, event: Event, txn: Transaction | None, rcpt: Recipient | None,
                                 msg: Message | None) -> Verdict:
        await self._report_abort()
        return await self.svc.pipeline.run(event, self, txn, rcpt, msg)

    async def _report_abort(self) -> None:
        txn, self._aborted = self._aborted, None
        if txn is not None:
            await self.svc.pipeline.abort(self, txn)

    async def _end_stages(self) -> None:
        """A transaction the client left unfinished is aborted, then the stages hear the close."""
        if not self._stages_open:
            return
        self.reset_transaction()
        await self._report_abort()
        if self.svc.pipeline.wants("close"):
            await self.svc.pipeline.close(self)

    def noqueue_reject(self, command: str, reply: str, recipient: str = "", sender: str | None = None) -> None:
        """Postfix's ``NOQUEUE: reject:`` line for refusals decided here (not by the engine)."""
        if sender is None:
            sender = self.txn.sender if self.txn else (self.state.sender or "")
        to = f" to=<{escape_for_log(recipient)}>" if recipient else ""
        log.info("NOQUEUE: reject: %s from %s: %s; from=<%s>%s proto=%s helo=<%s>", command,
                 self.client, reply, escape_for_log(sender), to, self.state.protocol, escape_for_log(self.helo))

    # --- TLS ------------------------------------------------------------------------------------
    async def start_tls(self) -> bool:
        """TLS over the connection (the 220 to STARTTLS was written)."""
        ctx = self.listener.tls
        assert ctx is not None
        self.lines.clear()  # RFC 3207 §4.2: plaintext pipelined after STARTTLS is discarded
        self._write_out()
        try:
            await self.conn.start_tls(ctx, timeout=self.cfg.timeout, discard_plaintext=True)
        except ConnectionClosed as exc:
            why = exc.__cause__ or exc
            log.info("warning: TLS handshake failed with %s: %s", self.client, type(why).__name__)
            return False
        self.tls_active = True
        self._note_tls()
        return True

    def _note_tls(self) -> None:
        obj = self.transport.get_extra_info("ssl_object") if self.transport else None
        if obj is None:
            return
        cipher = obj.cipher()
        self.tls_version = obj.version() or ""
        self.tls_cipher = cipher[0] if cipher else ""
        self.tls_bits = int(cipher[2]) if cipher else 0
        self.state.tls = True
        self.state.encryption_cipher = self.tls_cipher
        log.info("Anonymous TLS connection established from %s: %s with cipher %s (%d/%d bits)",
                 self.client, self.tls_version, self.tls_cipher, self.tls_bits, self.tls_bits)


SmtpConnection.session_class = SmtpSession
