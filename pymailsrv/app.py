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


# --- SMTP listeners (smtp engineer) -----------------------------------------------------------
async def start_smtp(settings: Settings, *, authenticator: Any, restrictions: Any, queue: Any,
                     directory: Any) -> list[Any]:
    """Start smtpd_listen / submission_listen / smtps_listen / reinject_listen in this loop.

    Returns ``pymailsrv.smtp.server.SmtpServer`` objects: ``.close()`` each, then
    ``await s.server.wait_closed()``. Raises ConfigError (port taken, missing certificate)."""
    from pymailsrv.policy.tables import open_table
    from pymailsrv.smtp.server import start_servers

    header_checks = [open_table(spec, settings) for spec in settings.get_list("header_checks")]
    return await start_servers(settings, authenticator=authenticator, restrictions=restrictions,
                               queue=queue, directory=directory, header_checks=header_checks)
