"""Builds the services from the configuration, starts every enabled listener in one asyncio
process, handles SIGTERM/SIGINT (graceful stop) and SIGHUP (reload). The only module that wires
concrete implementations together (DESIGN.md, Boundaries)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from pymailsrv.config.settings import Settings
from pymailsrv.log import get_logger, setup_logging

log = get_logger("master")


def serve(settings: Settings, *, config_path: str) -> int:
    setup_logging(level=settings.get_str("log_level"), log_file=settings.get_str("log_file"),
                  syslog_name=settings.get_str("syslog_name"), hostname=settings.get_str("myhostname"))
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("daemon started -- version %s, configuration %s", __import__("pymailsrv").__version__,
             settings.get_str("data_directory"))
    await stop.wait()
    log.info("terminating on signal")
    return 0


def init(args: argparse.Namespace, *, config_path: str) -> int:
    logging.getLogger("pymailsrv").error("init is not built yet")
    return 1


# --- POP3 (issue 6) -------------------------------------------------------------------------------
if TYPE_CHECKING:
    from pymailsrv.auth.base import Authenticator
    from pymailsrv.clock import Clock
    from pymailsrv.pop3.server import Pop3Server
    from pymailsrv.store.base import MailStore


async def start_pop3(settings: Settings, authenticator: Authenticator, store: MailStore,
                     clock: Clock | None = None) -> Pop3Server | None:
    """Start pop3_listen (with STLS when a certificate is set) and pop3s_listen (implicit TLS).
    Returns the server (``await server.close()`` on shutdown), or None when both are empty."""
    from pymailsrv.clock import SystemClock
    from pymailsrv.config.tls import server_context
    from pymailsrv.pop3.options import Pop3Options, Pop3Services
    from pymailsrv.pop3.server import Pop3Server

    plain, implicit = settings.get_listen("pop3_listen"), settings.get_listen("pop3s_listen")
    if not plain and not implicit:
        return None
    cert = settings.get_str("tls_cert_file")
    tls = server_context(cert, settings.get_str("tls_key_file")) if cert else None
    server = Pop3Server(Pop3Options.from_settings(settings, tls),
                        Pop3Services(authenticator, store, clock or SystemClock()))
    ports = await server.listen(plain)
    if implicit:
        ports += await server.listen(implicit, implicit_tls=True)
    log.info("pop3 listening on port(s) %s", ", ".join(map(str, ports)))
    return server
