"""Builds the services from the configuration, starts every enabled listener in one asyncio
process, handles SIGTERM/SIGINT (graceful stop) and SIGHUP (reload). The only module that wires
concrete implementations together (DESIGN.md, Boundaries)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pymailsrv.config.settings import Settings
from pymailsrv.log import get_logger, setup_logging
from pymailsrv.queue.manager import QueueManager

if TYPE_CHECKING:
    from pymailsrv.clock import Clock
    from pymailsrv.db.base import Directory
    from pymailsrv.store.base import MailStore

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


# --- queue manager and delivery (queue engineer) -------------------------------------------------
async def start_queue(settings: Settings, directory: Directory, store: MailStore,
                      *, clock: Clock | None = None) -> tuple[QueueManager, Callable[[], Awaitable[None]]]:
    """Build and start the spool, router, delivery agents and queue manager, and the control
    socket ``queue_directory/qmgr.sock``. Returns ``(queue, stop)``: ``queue`` implements
    ``queue.base.Queue`` (hand it to the SMTP listeners); ``await stop()`` at shutdown."""
    import os

    from pymailsrv.clock import SystemClock
    from pymailsrv.delivery.agents import AgentTable
    from pymailsrv.delivery.dns import MxResolver, make_resolver
    from pymailsrv.delivery.maildir import MaildirAgent
    from pymailsrv.delivery.router import DirectoryRouter
    from pymailsrv.delivery.smtp_client import SmtpClient
    from pymailsrv.policy.tables import close_table, open_table
    from pymailsrv.queue.admin import socket_path
    from pymailsrv.queue.control import serve_control
    from pymailsrv.queue.spool import FileSpool

    clk = clock or SystemClock()
    transport_tables = [open_table(spec, settings) for spec in settings.get_list("transport_maps")]
    password_tables = [open_table(spec, settings) for spec in settings.get_list("smtp_sasl_password_maps")]

    async def passwords(key: str) -> str | None:
        for table in password_tables:
            value = await table.get(key)
            if value:
                return value
        return None

    spool = FileSpool(settings.get_str("queue_directory"), clk)
    router = DirectoryRouter(settings, directory, transport_tables)
    maildir = MaildirAgent(settings, directory, store)
    mx = MxResolver(make_resolver(settings.get_list("dns_nameservers")))
    smtp = SmtpClient(settings, mx, passwords=passwords if password_tables else None)
    manager = QueueManager(settings, spool, router, AgentTable(maildir, smtp), clk)
    await manager.start()
    control = await serve_control(manager, socket_path(settings))

    async def stop() -> None:
        control.close()
        await manager.stop()
        await smtp.close()
        for table in transport_tables + password_tables:
            await close_table(table)
        try:
            os.unlink(socket_path(settings))
        except OSError:
            pass

    return manager, stop
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
    from pymailsrv.pop3.options import Pop3Options, Pop3Services
    from pymailsrv.pop3.server import Pop3Server
    plain, implicit = settings.get_listen("pop3_listen"), settings.get_listen("pop3s_listen")
    cert = settings.get_str("tls_cert_file")
    tls = server_context(cert, settings.get_str("tls_key_file")) if cert else None
    server = Pop3Server(Pop3Options.from_settings(settings, tls),
                        Pop3Services(authenticator, store, clock or SystemClock()))
    ports = await server.listen(plain)
    if implicit:
        ports += await server.listen(implicit, implicit_tls=True)
    log.info("pop3 listening on port(s) %s", ", ".join(map(str, ports)))
    return server
