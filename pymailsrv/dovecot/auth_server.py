"""The Dovecot authentication protocol server (auth/'s credential layer behind Dovecot's
``auth-client`` socket): Postfix with ``smtpd_sasl_type = dovecot`` and ``smtpd_sasl_path``
pointing here authenticates PostfixAdmin users as our own listeners do.

Implementation notes
- The mechanisms and their decoding are auth/sasl.py's, the password check and the failed-login
  throttling the shared Authenticator's, counted by the client's address (``rip``), so Postfix's
  clients and our own listeners' share one penalty.
- Whether a password may travel in the clear is the client's decision here (Postfix's
  smtpd_tls_auth_only), as with Dovecot: its auth process leaves disable_plaintext_auth to the
  login processes, and a Postfix that let LAN clients authenticate without TLS must keep working
  when pymailsrv takes Dovecot's place. MECH lines flag PLAIN and LOGIN ``plaintext`` so that
  Postfix's smtpd_sasl_security_options = noplaintext can drop them.
- Requests on one connection are served one after another (each Postfix smtpd process has its
  own connection and one request at a time). At most MAX_PENDING unfinished exchanges per
  connection; a protocol error disconnects (Dovecot does the same), a client error in one
  exchange FAILs that request only.
- Over TCP only mynetworks may connect (a UNIX socket is guarded by its permissions).
- Passwords never reach a log line; user names only escaped (pymailsrv.log.escape_for_log).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count

from pymailsrv.auth import sasl
from pymailsrv.auth.base import Authenticator, AuthUnavailable
from pymailsrv.dovecot import auth_protocol as P
from pymailsrv.dovecot import client_allowed
from pymailsrv.log import escape_for_log, get_logger
from pymailsrv.net.conn import Connection, ConnectionClosed, LineTooLong
from pymailsrv.net.networks import Network

log = get_logger("auth")

MAX_PENDING = 16
INVALID_INITIAL = "Invalid base64 data in initial response"  # Dovecot's texts (Postfix shows them)
INVALID_CONTINUED = "Invalid base64 data in continued response"


@dataclass(slots=True)
class _Client:
    conn: Connection
    cuid: int
    pending: dict[int, tuple[P.AuthRequest, sasl.SaslExchange]] = field(default_factory=dict)
    versioned: bool = False


class AuthClientServer:
    """``handle(conn)`` serves one auth-client connection (net.server.Handler)."""

    def __init__(self, authenticator: Authenticator, clients: Sequence[Network] = ()) -> None:
        self.authenticator = authenticator
        self.clients = tuple(clients)  # who may connect over TCP (mynetworks)
        self.cookie = secrets.token_hex(16)
        self._cuids = count(1)

    def mechanisms(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(m.name, ("plaintext",) if m.plaintext else ()) for m in sasl.MECHANISMS.values()]

    async def handle(self, conn: Connection) -> None:
        if not client_allowed(conn, self.clients, "auth"):
            return
        client = _Client(conn, next(self._cuids))
        conn.write(P.handshake(self.mechanisms(), os.getpid(), client.cuid, self.cookie))
        try:
            while True:
                line = await conn.read_line(P.MAX_LINE)
                await self._command(client, P.split_line(line))
                await conn.drain()
        except (ConnectionClosed, ConnectionError):
            return
        except LineTooLong:
            log.warning("auth-client: disconnecting client %d: line too long", client.cuid)
        except P.ProtocolError as exc:
            log.warning("auth-client: disconnecting client %d: %s", client.cuid, exc)

    async def _command(self, client: _Client, fields: list[str]) -> None:
        name = fields[0]
        if name == "VERSION":
            major, _ = P.parse_version(fields)
            if major != P.MAJOR_VERSION:
                raise P.ProtocolError(f"auth protocol version {major} not supported")
            client.versioned = True
            return
        if not client.versioned:
            raise P.ProtocolError("VERSION expected first")
        if name == "CPID":
            return
        if name == "AUTH":
            await self._auth(client, P.parse_auth(fields))
        elif name == "CONT":
            await self._cont(client, *P.parse_cont(fields))
        else:
            raise P.ProtocolError(f"unknown command {escape_for_log(name[:40])}")

    async def _auth(self, client: _Client, req: P.AuthRequest) -> None:
        if req.id in client.pending:
            raise P.ProtocolError("request id in use")
        if len(client.pending) >= MAX_PENDING:
            raise P.ProtocolError("too many pending requests")
        mech = sasl.MECHANISMS.get(req.mechanism)
        if mech is None:
            client.conn.write(P.fail(req.id, reason="Unsupported authentication mechanism"))
            return
        try:
            exchange = sasl.SaslExchange(req.mechanism, req.initial_response)
        except sasl.SaslError as exc:
            client.conn.write(self._refused(req, exc, INVALID_INITIAL))
            return
        await self._step(client, req, exchange)

    async def _cont(self, client: _Client, request_id: int, response: str) -> None:
        entry = client.pending.pop(request_id, None)
        if entry is None:
            raise P.ProtocolError("CONT for an unknown request")
        req, exchange = entry
        try:
            exchange.respond(response)
        except sasl.SaslError as exc:
            client.conn.write(self._refused(req, exc, INVALID_CONTINUED))
            return
        await self._step(client, req, exchange)

    async def _step(self, client: _Client, req: P.AuthRequest, exchange: sasl.SaslExchange) -> None:
        if exchange.challenge is not None:
            client.pending[req.id] = (req, exchange)
            client.conn.write(P.cont(req.id, exchange.challenge))
            return
        credentials = exchange.credentials()
        service = req.service or "smtp"
        try:
            account = await self.authenticator.authenticate(credentials.authcid, credentials.password,
                                                            service=service, remote_ip=req.remote_ip)
        except AuthUnavailable:
            client.conn.write(P.fail(req.id, user=credentials.authcid, temp=True))
            return
        if account is None:
            client.conn.write(P.fail(req.id, user=credentials.authcid))
            return
        client.conn.write(P.ok(req.id, account.username))

    @staticmethod
    def _refused(req: P.AuthRequest, exc: sasl.SaslError, base64_text: str) -> bytes:
        """A client error inside one exchange: that request fails, the connection goes on."""
        if isinstance(exc, sasl.SaslCancelled):
            return P.fail(req.id, reason="Authentication aborted")
        if isinstance(exc, sasl.SaslBadBase64):
            return P.fail(req.id, code="invalid_base64", reason=base64_text)
        user = exc.authcid if isinstance(exc, sasl.AuthzidRefused) else ""
        log.info("login failed: user=<%s>, rip=%s, service=%s, reason=%s", escape_for_log(user), req.remote_ip,
                 escape_for_log(req.service), "authorization identity refused" if user else "malformed response")
        return P.fail(req.id, user=user)
