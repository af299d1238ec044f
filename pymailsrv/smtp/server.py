"""Start the SMTP listeners (smtpd 25, submission 587, smtps 465, reinject) in this event loop."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymailsrv.auth.base import Authenticator
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Listen, Settings
from pymailsrv.db.base import Directory
from pymailsrv.errors import ConfigError
from pymailsrv.log import get_logger
from pymailsrv.net.limits import ConnectionLimiter
from pymailsrv.net.server import hold_listening
from pymailsrv.policy.base import LookupTable, Restrictions
from pymailsrv.queue.base import Queue
from pymailsrv.smtp.context import Kind, ListenerSpec, Services, SmtpConfig
from pymailsrv.smtp.limits import SessionLimiter
from pymailsrv.smtp.session import SmtpConnection
from pymailsrv.smtp.stages import smtpd_pipeline
from pymailsrv.tls.contexts import listener_context

log = get_logger("smtpd")

LISTEN_BACKLOG = 100  # asyncio's default
LISTEN_PARAMS: tuple[tuple[str, Kind], ...] = (
    ("smtpd_listen", "smtpd"),
    ("submission_listen", "submission"),
    ("smtps_listen", "smtps"),
    ("reinject_listen", "reinject"),
)


@dataclass(slots=True)
class SmtpServer:
    kind: Kind
    address: Listen
    server: asyncio.Server
    spec: ListenerSpec
    index: int = 0  # of ``address`` in its listen parameter

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop listening; idle sessions get 421 and are closed, busy ones finish their command."""
        self.server.close()
        for session in list(self.spec.sessions):
            session.shutdown()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until every session of this listener has ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.spec.sessions and loop.time() < deadline:
            await asyncio.sleep(0.05)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    return listener_context(settings, settings.get_str("smtpd_tls_cert_file"), settings.get_str("smtpd_tls_key_file"))


def make_limiter(settings: Settings, clock: Clock) -> ConnectionLimiter:
    """The per-client session limiter; exempt are smtpd_client_event_limit_exceptions
    (default: mynetworks), as in Postfix."""
    exceptions = list(SmtpConfig.from_settings(settings).mynetworks)
    if settings.is_set("smtpd_client_event_limit_exceptions"):
        exceptions = settings.get_networks("smtpd_client_event_limit_exceptions")
    return ConnectionLimiter(clock, count_limit=settings.get_int("smtpd_client_connection_count_limit"),
                             rate_limit=settings.get_int("smtpd_client_connection_rate_limit"),
                             rate_unit=settings.get_seconds("anvil_rate_time_unit"),
                             exceptions=tuple(exceptions))


def make_services(settings: Settings, *, authenticator: Authenticator | None, restrictions: Restrictions,
                  queue: Queue, directory: Directory | None = None, clock: Clock | None = None,
                  header_checks: Sequence[LookupTable] = (),
                  limiter: SessionLimiter | None = None) -> Services:
    config = SmtpConfig.from_settings(settings)
    clock = clock or SystemClock()
    pipeline = smtpd_pipeline(settings, config, restrictions, header_checks, clock)
    return Services(config=config, authenticator=authenticator, pipeline=pipeline, queue=queue,
                    directory=directory, clock=clock, limiter=limiter or make_limiter(settings, clock))


async def start_servers(settings: Settings, *, authenticator: Authenticator | None,
                        restrictions: Restrictions, queue: Queue, directory: Directory | None = None,
                        clock: Clock | None = None, header_checks: Sequence[LookupTable] = (),
                        limiter: SessionLimiter | None = None,
                        inherited: Mapping[tuple[str, int], Sequence[socket.socket]] | None = None,
                        serve: bool = True) -> list[SmtpServer]:
    """Listen on every configured address; on failure close what was opened and raise ConfigError.

    ``inherited``: an SMTP worker process serves the listening sockets of the main process
    instead, keyed by (parameter, index of the address in it). ``serve`` False: bind only (the
    main process of SMTP workers holds the sockets they accept on)."""
    services = make_services(settings, authenticator=authenticator, restrictions=restrictions, queue=queue,
                             directory=directory, clock=clock, header_checks=header_checks, limiter=limiter)
    tls = tls_context(settings)
    started: list[SmtpServer] = []
    try:
        for param, kind in LISTEN_PARAMS:
            addresses = settings.get_listen(param)
            if addresses and kind in ("submission", "smtps") and tls is None:
                raise ConfigError(f"{param}: {kind} needs a certificate (smtpd_tls_cert_file)")
            for index, address in enumerate(addresses):
                spec = ListenerSpec(kind, tls)
                if inherited is None:
                    started.append(await listen(services, spec, address, param, serve=serve))
                    started[-1].index = index
                    log.info("%s listening on %s", kind, server_address(started[-1]))
                else:
                    for sock in inherited.get((param, index), ()):
                        started.append(await listen(services, spec, address, param, sock=sock))
                        started[-1].index = index
    except BaseException:
        for s in started:
            s.close()
        raise
    return started


def server_address(server: SmtpServer) -> str:
    host, port = server.server.sockets[0].getsockname()[:2]
    return f"{host}:{port}"


async def listen(services: Services, spec: ListenerSpec, address: Listen, param: str = "",
                 sock: socket.socket | None = None, serve: bool = True) -> SmtpServer:
    loop = asyncio.get_running_loop()
    # SMTP sessions are short: a worker takes every pending connection per wake-up (accepting one
    # at a time, as IMAP's workers do, made every worker wake for every connection: +0.2 ms CPU
    # per message), and the load evens out over many connections
    where: dict[str, Any] = ({"sock": sock} if sock is not None else
                             {"host": address.host or None, "port": address.port, "reuse_address": True})
    try:
        server = await loop.create_server(
            lambda: SmtpConnection(services, spec), ssl=spec.tls if spec.implicit_tls else None,
            ssl_handshake_timeout=services.config.timeout if spec.implicit_tls else None,
            start_serving=serve, **where)
    except OSError as exc:
        why = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ConfigError(f"{param or spec.kind}: cannot listen on {address}: {why}") from None
    if not serve:  # connections wait in the backlog while the workers (re)start
        hold_listening(server, LISTEN_BACKLOG)
    return SmtpServer(spec.kind, address, server, spec)


def listening_sockets(servers: Sequence[SmtpServer]) -> dict[tuple[str, int], list[socket.socket]]:
    """The sockets of ``servers`` as ``start_servers(inherited=...)`` takes them."""
    params = dict((kind, param) for param, kind in LISTEN_PARAMS)
    out: dict[tuple[str, int], list[socket.socket]] = {}
    for server in servers:
        param = params[server.kind]
        for sock in server.server.sockets:
            out.setdefault((param, server.index), []).append(sock)
    return out
