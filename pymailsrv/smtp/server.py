"""Start the SMTP listeners (smtpd 25, submission 587, smtps 465, reinject) in this event loop."""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from pymailsrv.auth.base import Authenticator
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Listen, Settings
from pymailsrv.config.tls import server_context
from pymailsrv.db.base import Directory
from pymailsrv.errors import ConfigError
from pymailsrv.log import get_logger
from pymailsrv.policy.base import LookupTable, Restrictions
from pymailsrv.queue.base import Queue
from pymailsrv.smtp.context import Kind, ListenerSpec, Services, SmtpConfig
from pymailsrv.smtp.limits import ConnectionLimiter
from pymailsrv.smtp.session import SmtpSession

log = get_logger("smtpd")

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
    cert = settings.get_str("smtpd_tls_cert_file")
    if not cert:
        return None
    return server_context(cert, settings.get_str("smtpd_tls_key_file"))


def make_services(settings: Settings, *, authenticator: Authenticator | None, restrictions: Restrictions,
                  queue: Queue, directory: Directory | None = None, clock: Clock | None = None,
                  header_checks: Sequence[LookupTable] = ()) -> Services:
    config = SmtpConfig.from_settings(settings)
    clock = clock or SystemClock()
    exceptions = list(config.mynetworks)
    if settings.is_set("smtpd_client_event_limit_exceptions"):
        from ipaddress import ip_network

        exceptions = []
        for item in settings.get_list("smtpd_client_event_limit_exceptions"):
            try:
                exceptions.append(ip_network(item.strip("[]").replace("]/", "/"), strict=False))
            except ValueError:
                log.warning('smtpd_client_event_limit_exceptions: ignoring "%s"', item)
    limiter = ConnectionLimiter(clock, count_limit=settings.get_int("smtpd_client_connection_count_limit"),
                                rate_limit=settings.get_int("smtpd_client_connection_rate_limit"),
                                rate_unit=settings.get_seconds("anvil_rate_time_unit"),
                                exceptions=tuple(exceptions))
    return Services(config=config, authenticator=authenticator, restrictions=restrictions, queue=queue,
                    directory=directory, clock=clock, limiter=limiter, header_checks=tuple(header_checks))


async def start_servers(settings: Settings, *, authenticator: Authenticator | None,
                        restrictions: Restrictions, queue: Queue, directory: Directory | None = None,
                        clock: Clock | None = None,
                        header_checks: Sequence[LookupTable] = ()) -> list[SmtpServer]:
    """Listen on every configured address; on failure close what was opened and raise ConfigError."""
    services = make_services(settings, authenticator=authenticator, restrictions=restrictions, queue=queue,
                             directory=directory, clock=clock, header_checks=header_checks)
    tls = tls_context(settings)
    started: list[SmtpServer] = []
    try:
        for param, kind in LISTEN_PARAMS:
            addresses = settings.get_listen(param)
            if addresses and kind in ("submission", "smtps") and tls is None:
                raise ConfigError(f"{param}: {kind} needs a certificate (smtpd_tls_cert_file)")
            for address in addresses:
                server = await listen(services, ListenerSpec(kind, tls), address, param)
                started.append(server)
                log.info("%s listening on %s", kind, server_address(server))
    except BaseException:
        for s in started:
            s.close()
        raise
    return started


def server_address(server: SmtpServer) -> str:
    host, port = server.server.sockets[0].getsockname()[:2]
    return f"{host}:{port}"


async def listen(services: Services, spec: ListenerSpec, address: Listen, param: str = "") -> SmtpServer:
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: SmtpSession(services, spec, loop), address.host or None, address.port,
            ssl=spec.tls if spec.implicit_tls else None, reuse_address=True,
            ssl_handshake_timeout=services.config.timeout if spec.implicit_tls else None)
    except OSError as exc:
        why = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ConfigError(f"{param or spec.kind}: cannot listen on {address}: {why}") from None
    return SmtpServer(spec.kind, address, server, spec)
