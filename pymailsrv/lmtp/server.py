"""Start the LMTP listeners (``lmtp_listen``: TCP addresses and UNIX sockets) in this event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from dataclasses import dataclass, field

from pymailsrv.clock import Clock
from pymailsrv.config.settings import Settings
from pymailsrv.db.base import Directory
from pymailsrv.delivery.base import Transport
from pymailsrv.errors import ConfigError
from pymailsrv.lmtp.session import DirectDelivery, LmtpConnection, LmtpContext, LmtpOptions, lmtp_listener
from pymailsrv.log import get_logger
from pymailsrv.net.endpoints import Endpoint, endpoint_address, listen_endpoint, parse_endpoints
from pymailsrv.pipeline.runner import EMPTY
from pymailsrv.smtp.context import ListenerSpec, Services, SmtpConfig
from pymailsrv.store.base import MailStore
from pymailsrv.tls.contexts import listener_context

log = get_logger("lmtp")


@dataclass(frozen=True, slots=True)
class LmtpSetup:
    """What LMTP sessions of one configuration share (a reload makes the next one)."""

    services: Services
    context: LmtpContext
    tls: ssl.SSLContext | None  # for STARTTLS over TCP


@dataclass(slots=True)
class LmtpServer:
    """One listening endpoint. New connections get the current ``setup``; sessions in progress
    finish on the one they began with (a reload)."""

    endpoint: Endpoint
    setup: LmtpSetup
    spec: ListenerSpec
    server: asyncio.Server | None = None
    retired: list[ListenerSpec] = field(default_factory=list)  # of earlier setups, with sessions

    def connection(self) -> LmtpConnection:
        """The protocol factory."""
        return LmtpConnection(self.setup.services, self.spec, self.setup.context)

    def reconfigure(self, setup: LmtpSetup) -> None:
        self.retired = [spec for spec in (*self.retired, self.spec) if spec.sessions]
        self.setup = setup
        self.spec = lmtp_listener(None if self.endpoint.is_unix else setup.tls)

    @property
    def address(self) -> str:
        assert self.server is not None
        return endpoint_address(self.server)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def sessions(self) -> int:
        return sum(len(spec.sessions) for spec in (self.spec, *self.retired))

    def close(self) -> None:
        """Stop listening; idle sessions are closed, busy ones finish their command."""
        if self.server is not None:
            self.server.close()
        for spec in (self.spec, *self.retired):
            for session in list(spec.sessions):
                session.shutdown()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.sessions() and loop.time() < deadline:
            await asyncio.sleep(0.05)


def socket_options(settings: Settings) -> tuple[int, str]:
    """(mode, group) of the UNIX sockets of the services Postfix connects to."""
    text = settings.get_str("service_socket_mode")
    try:
        mode = int(text, 8)
    except ValueError:
        raise ConfigError(f'service_socket_mode: "{text}" is not an octal mode') from None
    return mode, settings.get_str("service_socket_group")


def lmtp_services(settings: Settings, directory: Directory, clock: Clock) -> Services:
    config = SmtpConfig.from_settings(settings)
    greeting = LmtpOptions.from_settings(settings).greeting
    config = dataclasses.replace(config, banner=f"{config.myhostname} {greeting}", helo_required=True,
                                 timeout=settings.get_seconds("lmtp_timeout"))
    return Services(config=config, authenticator=None, pipeline=EMPTY, queue=DirectDelivery(),
                    directory=directory, clock=clock, limiter=None)


def lmtp_setup(settings: Settings, *, directory: Directory, store: MailStore, delivery: Transport,
               clock: Clock) -> LmtpSetup:
    tls = listener_context(settings, settings.get_str("tls_cert_file"), settings.get_str("tls_key_file"))
    return LmtpSetup(lmtp_services(settings, directory, clock),
                     LmtpContext(LmtpOptions.from_settings(settings), store, delivery), tls)


async def start_lmtp(settings: Settings, setup: LmtpSetup) -> list[LmtpServer]:
    """Listen on every ``lmtp_listen`` endpoint; on failure close what was opened and raise
    ConfigError."""
    try:
        endpoints = parse_endpoints(settings.get_list("lmtp_listen"))
    except ValueError as exc:
        raise ConfigError(f"lmtp_listen: {exc}") from None
    mode, group = socket_options(settings)
    started: list[LmtpServer] = []
    try:
        for endpoint in endpoints:
            lmtp = LmtpServer(endpoint, setup, lmtp_listener(None if endpoint.is_unix else setup.tls))
            try:
                lmtp.server = await listen_endpoint(lmtp.connection, endpoint, mode=mode, group=group)
            except (OSError, KeyError) as exc:
                raise ConfigError(f"lmtp_listen: cannot listen on {endpoint}: {exc}") from None
            started.append(lmtp)
            log.info("lmtp listening on %s", lmtp.address)
    except BaseException:
        for s in started:
            s.close()
        raise
    return started
