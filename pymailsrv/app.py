"""Builds the services from the configuration, starts every enabled listener in one asyncio
process, handles SIGTERM/SIGINT (graceful stop) and SIGHUP (reload). The only module that wires
concrete implementations together (DESIGN.md, Boundaries)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

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


# --- IMAP (imap engineer) ----------------------------------------------------------------------
async def start_imap(settings: Settings, authenticator: Any, store: Any, servers: list[Any]) -> None:
    """Start the imap_listen (STARTTLS offered when a certificate is configured) and imaps_listen
    (implicit TLS) listeners; appends net.Server objects to ``servers`` (``await s.close()`` each
    on shutdown, after ``imap_server.notify_shutdown()`` if a goodbye is wanted)."""
    from pymailsrv.config.tls import server_context
    from pymailsrv.imap.server import ImapConfig, ImapServer
    from pymailsrv.net import ConnectionRegistry, start_server

    plain, implicit = settings.get_listen("imap_listen"), settings.get_listen("imaps_listen")
    if not plain and not implicit:
        return
    cert, key = settings.get_str("tls_cert_file"), settings.get_str("tls_key_file")
    tls = server_context(cert, key) if cert else None
    config = ImapConfig.from_settings(settings)
    imap = ImapServer(config, authenticator, store, tls=tls)
    registry = ConnectionRegistry(idle_timeout=config.timeout)
    for listen in plain:
        servers.append(await start_server(imap.handle, listen.host, listen.port, registry=registry, name="imap"))
        log.info("imap listening on %s", listen)
    for listen in implicit:
        if tls is None:
            log.warning("imaps_listen %s ignored: no tls_cert_file", listen)
            continue
        servers.append(await start_server(imap.handle, listen.host, listen.port, ssl=tls, registry=registry,
                                          name="imaps"))
        log.info("imaps listening on %s", listen)
