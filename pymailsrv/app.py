"""Builds the services from the configuration, starts every enabled listener in one asyncio
process, handles SIGTERM/SIGINT (graceful stop). The only module that wires concrete
implementations together (DESIGN.md, Boundaries); also ``pymailsrv init`` and ``serve --demo``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import secrets
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError
from pymailsrv.log import get_logger, setup_logging

if TYPE_CHECKING:
    from pymailsrv.auth.authenticator import DirectoryAuthenticator
    from pymailsrv.auth.base import Authenticator
    from pymailsrv.clock import Clock
    from pymailsrv.db.base import Directory
    from pymailsrv.db.directory import SqlDirectory
    from pymailsrv.pipeline.runner import Pipeline
    from pymailsrv.policy.restrictions import RestrictionEngine
    from pymailsrv.pop3.server import Pop3Server
    from pymailsrv.queue.manager import QueueManager
    from pymailsrv.store.base import MailStore
    from pymailsrv.store.maildir import MaildirStore
    from pymailsrv.workers import WorkerSpec

log = get_logger("master")

DEMO_DIR = "data"
DEMO_DOMAIN = "example.test"
DEMO_USER = f"demo@{DEMO_DOMAIN}"


# --- serve --------------------------------------------------------------------------------------
def serve(settings: Settings | None, *, config_path: str, demo: bool = False, worker: str = "") -> int:
    """``pymailsrv serve``; ``worker`` is the internal spec of an SMTP worker process
    (pymailsrv/workers.py) that the main process starts itself."""
    if demo:
        config_path, password = prepare_demo()
        settings = Settings.load(config_path)
        print(f"pymailsrv demo: configuration {config_path}\n"
              f"  mailbox {DEMO_USER}  password {password}\n"
              f"  SMTP 127.0.0.1:2525 (MTA), 2587 (submission, STARTTLS), 2465 (SMTPS)\n"
              f"  IMAP 127.0.0.1:1143 (STARTTLS), 1993 (IMAPS); POP3 127.0.0.1:1110 (STLS), 1995 (POP3S)\n"
              f"  try: swaks --server 127.0.0.1:2525 --to {DEMO_USER}", file=sys.stderr, flush=True)
    assert settings is not None
    setup_logging(level=settings.get_str("log_level"), log_file=settings.get_str("log_file"),
                  syslog_name=settings.get_str("syslog_name"), hostname=settings.get_str("myhostname"))
    try:
        if worker:
            from pymailsrv.workers import WorkerSpec

            return asyncio.run(_serve_worker(settings, WorkerSpec.parse(worker)))
        return asyncio.run(_serve(settings, config_path))
    except ConfigError as exc:
        log.critical("fatal: %s", exc)
        return 1


def _bind_error(exc: OSError) -> ConfigError:
    text = exc.strerror or str(exc)
    if exc.errno == errno.EACCES:
        text += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    return ConfigError(f"cannot listen: {text}")


@dataclass(slots=True)
class _Core:
    """What every serving process builds from the configuration."""

    clock: Clock
    directory: SqlDirectory
    authenticator: DirectoryAuthenticator
    store: MaildirStore
    restrictions: RestrictionEngine

    async def close(self) -> None:
        await self.restrictions.close()
        await self.store.aclose()  # index snapshots still being written in the background
        await self.directory.close()


def _core(settings: Settings) -> _Core:
    from pymailsrv.auth.authenticator import DirectoryAuthenticator
    from pymailsrv.clock import SystemClock
    from pymailsrv.db.directory import SqlDirectory
    from pymailsrv.policy.restrictions import RestrictionEngine
    from pymailsrv.store.maildir import MaildirStore

    clock = SystemClock()
    # fsyncs of concurrent deliveries and spool writes wait in this pool; the default (cpu+4)
    # serialises 20 SMTP sessions behind a handful of threads
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="io"))
    url = settings.get_str("database_url")
    directory = SqlDirectory(url, settings.get_str("virtual_mailbox_base"), settings.get_str("recipient_delimiter"),
                             cache_ttl=settings.get_seconds("directory_cache_ttl"), clock=clock,
                             table_prefix=settings.get_str("database_table_prefix"))
    return _Core(clock, directory, DirectoryAuthenticator(directory, settings, clock),
                 MaildirStore(settings.get_str("virtual_mailbox_base"), settings.get_str("myhostname"), clock),
                 RestrictionEngine(settings, directory, clock=clock))


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(settings: Settings, config_path: str) -> int:
    from pymailsrv.auth.base import UserIpCounter
    from pymailsrv.db import schema
    from pymailsrv.smtp.server import listening_sockets, make_limiter

    for name in ("data_directory", "queue_directory", "virtual_mailbox_base"):
        os.makedirs(settings.get_str(name), exist_ok=True)
    url = settings.get_str("database_url")
    if url.startswith("sqlite"):  # the embedded default creates its own schema
        await schema.upgrade(url, settings.get_str("database_table_prefix"))
    core = _core(settings)
    limiter = make_limiter(settings, core.clock)
    user_ip = {"imap": UserIpCounter(), "pop3": UserIpCounter()}
    processes = settings.get_int("worker_processes")
    here = not processes  # with workers this process only holds the listening sockets
    sockets: Sockets = {}
    stops: list[Callable[[], Awaitable[None]]] = []
    try:
        queue, stop_queue = await start_queue(settings, core.directory, core.store, clock=core.clock)
        stops.append(stop_queue)
        smtp = await start_smtp(settings, authenticator=core.authenticator, restrictions=core.restrictions,
                                queue=queue, directory=core.directory, limiter=limiter, serve=here)
        stops.extend(_closer(server) for server in smtp)
        sockets.update(listening_sockets(smtp))
        passed: Sockets = {}  # IMAP/POP3: accepted here, each connection passed to a worker
        imap: list[Any] = []
        await start_imap(settings, core.authenticator, core.store, imap, user_ip=user_ip["imap"], serve=here,
                         sockets=passed)
        stops.extend(s.close for s in imap)
        pop3 = await start_pop3(settings, core.authenticator, core.store, core.clock, user_ip=user_ip["pop3"],
                                serve=here, sockets=passed)
        if pop3 is not None:
            stops.append(pop3.close)
        if processes and (sockets or passed):
            from pymailsrv.workers import WorkerPool

            workers = WorkerPool(processes, config_path, sockets, limiter, queue.pickup,
                                 core.authenticator.throttle, user_ip, passed)
            await workers.start()
            stops.append(workers.stop)  # stopped first: each finishes its sessions
    except OSError as exc:
        await _stop_all(stops)
        await core.close()
        raise _bind_error(exc) from None
    except BaseException:
        await _stop_all(stops)
        await core.close()
        raise
    stop = _stop_event()
    log.info("daemon started -- version %s, data directory %s", __import__("pymailsrv").__version__,
             settings.get_str("data_directory"))
    await stop.wait()
    log.info("terminating on signal")
    await _stop_all(stops)
    await core.close()
    log.info("daemon stopped")
    return 0


async def _serve_worker(settings: Settings, spec: WorkerSpec) -> int:
    """A worker process: serves the inherited SMTP listeners (delivering on the fast path, handing
    the rest to the main process) and the IMAP/POP3 connections the main process passes it; stops
    on SIGTERM or when the main process is gone."""
    from pymailsrv.smtp.server import make_limiter
    from pymailsrv.workers import Inbox, MainChannel, RemoteLimiter, RemoteSessionCounter, RemoteThrottle

    channel = await MainChannel.connect(spec.channel)
    core = _core(settings)
    core.authenticator.throttle = RemoteThrottle(channel, core.authenticator.throttle)
    stops: list[Callable[[], Awaitable[None]]] = [channel.close]
    try:
        queue, stop_queue = await start_queue(settings, core.directory, core.store, clock=core.clock,
                                              worker=(spec.slot, channel.pickup))
        stops.append(stop_queue)
        limiter = RemoteLimiter(channel, make_limiter(settings, core.clock))
        inherited = spec.sockets()
        servers: list[Any] = await start_smtp(settings, authenticator=core.authenticator,
                                              restrictions=core.restrictions, queue=queue,
                                              directory=core.directory, limiter=limiter, inherited=inherited)
        stops.extend(_closer(server) for server in servers)
        adopters: dict[tuple[str, int], Any] = {}
        imap: list[Any] = []

        def ended() -> None:
            channel.send("gone")

        await start_imap(settings, core.authenticator, core.store, imap,
                         user_ip=RemoteSessionCounter(channel, "imap"), adopters=adopters, on_end=ended)
        stops.extend(s.close for s in imap)
        pop3 = await start_pop3(settings, core.authenticator, core.store, core.clock,
                                user_ip=RemoteSessionCounter(channel, "pop3"), adopters=adopters, on_end=ended)
        if pop3 is not None:
            stops.append(pop3.close)
        inbox = Inbox(spec.inbox, adopters, channel)
        stops.append(_closer_sync(inbox.close))
        channel.send("ready")
        log.info("worker process %d serving %d listening socket(s) and %d passed", spec.slot,
                 sum(len(socks) for socks in inherited.values()), len(adopters))
        stop = _stop_event()
        gone = asyncio.ensure_future(channel.closed.wait())
        await asyncio.wait([asyncio.ensure_future(stop.wait()), gone], return_when=asyncio.FIRST_COMPLETED)
        if gone.done():
            log.warning("the main process is gone; stopping")
    finally:
        await _stop_all(stops)
        await core.close()
    return 0


def _closer_sync(close: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        close()
    return run


def _closer(server: Any) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        server.close()
        await server.wait_closed()
    return close


async def _stop_all(stops: list[Callable[[], Awaitable[None]]]) -> None:
    """Listeners first (newest first), the queue last, so accepted mail is spooled."""
    for stop in reversed(stops):
        try:
            await asyncio.wait_for(stop(), 10)
        except Exception:
            log.exception("error during shutdown")


# --- init and the demo --------------------------------------------------------------------------
def init(args: argparse.Namespace, *, config_path: str) -> int:
    """``pymailsrv init``: a commented configuration, the database and a self-signed certificate."""
    data_dir = os.path.abspath(args.data_dir or DEMO_DIR)
    explicit = args.config or os.environ.get("PYMAILSRV_CONFIG")
    path = os.path.abspath(explicit) if explicit else os.path.join(data_dir, "pymailsrv.conf")
    if os.path.exists(path) and not args.force:
        raise ConfigError(f"{path} exists (use --force to overwrite)")
    hostname = args.hostname or Settings().get_str("myhostname")
    password = asyncio.run(_init(path, data_dir, hostname, demo=args.demo))
    print(f"wrote {path}; database and certificate under {data_dir}")
    if password:
        print(f"demo mailbox {DEMO_USER} password {password}")
    if not explicit:
        print(f"use it with: export PYMAILSRV_CONFIG={path}")
    return 0


async def _init(path: str, data_dir: str, hostname: str, *, demo: bool) -> str:
    from pymailsrv.auth.schemes import hash_password
    from pymailsrv.config import sample
    from pymailsrv.config.tls import generate_self_signed
    from pymailsrv.db import schema
    from pymailsrv.db.admin import create_maildir
    from pymailsrv.db.engine import make_engine
    from pymailsrv.db.manage import Admin

    tls_dir = os.path.join(data_dir, "tls")
    os.makedirs(tls_dir, mode=0o700, exist_ok=True)
    cert, key = os.path.join(tls_dir, "cert.pem"), os.path.join(tls_dir, "key.pem")
    if not os.path.exists(cert):
        generate_self_signed(hostname, cert, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(sample.render(hostname=hostname, data_dir=data_dir, cert_file=cert, key_file=key, demo=demo))
    settings = Settings.load(path)
    for name in ("queue_directory", "virtual_mailbox_base"):
        os.makedirs(settings.get_str(name), exist_ok=True)
    url = settings.get_str("database_url")
    await schema.upgrade(url, settings.get_str("database_table_prefix"))
    if not demo:
        return ""
    password = secrets.token_urlsafe(9)
    engine = make_engine(url)
    try:
        admin = Admin(engine, quota_multiplier=settings.get_int("quota_multiplier"),
                      table_prefix=settings.get_str("database_table_prefix"))
        await admin.add_domain(DEMO_DOMAIN, description="pymailsrv demo")
        hashed = await asyncio.to_thread(hash_password, password, settings.get_str("password_scheme"))
        maildir = await admin.add_mailbox(DEMO_USER, hashed, name="Demo User")
        await admin.add_alias(f"postmaster@{DEMO_DOMAIN}", DEMO_USER)
    finally:
        await engine.dispose()
    create_maildir(settings.get_str("virtual_mailbox_base"), maildir)
    with open(os.path.join(data_dir, "demo-password"), "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(password + "\n")
    return password


def prepare_demo() -> tuple[str, str]:
    """``serve --demo``: ./data with the demo configuration, created on first use."""
    data_dir = os.path.abspath(DEMO_DIR)
    path = os.path.join(data_dir, "pymailsrv.conf")
    secret = os.path.join(data_dir, "demo-password")
    if not (os.path.exists(path) and os.path.exists(secret)):
        password = asyncio.run(_init(path, data_dir, "localhost", demo=True))
    else:
        with open(secret, encoding="utf-8") as fh:
            password = fh.read().strip()
    return path, password


# --- SMTP listeners (smtp engineer) -----------------------------------------------------------
async def start_smtp(settings: Settings, *, authenticator: Any, restrictions: Any, queue: Any,
                     directory: Any, limiter: Any = None, inherited: Any = None,
                     serve: bool = True) -> list[Any]:
    """Start smtpd_listen / submission_listen / smtps_listen / reinject_listen in this loop
    (``inherited``: on the main process's sockets, in an SMTP worker; ``serve`` False: only bind
    them, for the workers).

    Returns ``pymailsrv.smtp.server.SmtpServer`` objects: ``.close()`` each, then
    ``await s.server.wait_closed()``. Raises ConfigError (port taken, missing certificate)."""
    from pymailsrv.policy.tables import open_table
    from pymailsrv.smtp.server import start_servers

    header_checks = [open_table(spec, settings) for spec in settings.get_list("header_checks")]
    return await start_servers(settings, authenticator=authenticator, restrictions=restrictions,
                               queue=queue, directory=directory, header_checks=header_checks,
                               limiter=limiter, inherited=inherited, serve=serve)


# --- queue manager and delivery (queue engineer) -------------------------------------------------
async def start_queue(settings: Settings, directory: Directory, store: MailStore,
                      *, clock: Clock | None = None,
                      worker: tuple[int, Callable[[str], Awaitable[None]]] | None = None,
                      ) -> tuple[QueueManager, Callable[[], Awaitable[None]]]:
    """Build and start the spool, router, delivery agents and queue manager, and the control
    socket ``queue_directory/qmgr.sock``. Returns ``(queue, stop)``: ``queue`` implements
    ``queue.base.Queue`` (hand it to the SMTP listeners); ``await stop()`` at shutdown.

    ``worker`` = (slot, handoff) in an SMTP worker process: the manager is not started and has
    no control socket; what it spools goes to ``handoff`` (the main process's pickup)."""
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
    from pymailsrv.queue.manager import QueueManager
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

    spool = FileSpool(settings.get_str("queue_directory"), clk, id_suffix=f"{worker[0]:X}" if worker else "")
    alias_tables = [open_table(spec, settings) for spec in settings.get_list("virtual_alias_maps")]
    router = DirectoryRouter(settings, directory, transport_tables, alias_tables)
    maildir = MaildirAgent(settings, directory, store)
    mx = MxResolver(make_resolver(settings.get_list("dns_nameservers")))
    smtp = SmtpClient(settings, mx, passwords=passwords if password_tables else None)
    manager = QueueManager(settings, spool, router, AgentTable(maildir, smtp), clk,
                           handoff=worker[1] if worker else None, pipeline=non_smtpd_pipeline(settings))
    control = None
    if worker is None:
        await manager.start()
        control = await serve_control(manager, socket_path(settings))

    async def stop() -> None:
        if control is not None:
            control.close()
            await manager.stop()
        await smtp.close()
        for table in transport_tables + password_tables + alias_tables:
            await close_table(table)
        if control is not None:
            with contextlib.suppress(OSError):
                os.unlink(socket_path(settings))

    return manager, stop


def non_smtpd_pipeline(settings: Settings) -> Pipeline:
    """non_smtpd_pipeline: the stages of the mail the queue manager generates (bounces, notices)."""
    from pymailsrv.pipeline.build import build_pipeline
    from pymailsrv.pipeline.stages import ContentFilterStage
    from pymailsrv.policy.tables import open_table
    from pymailsrv.smtp.stages import HeaderChecksStage

    return build_pipeline("non_smtpd_pipeline", settings, {
        "header_checks": lambda: HeaderChecksStage([open_table(spec, settings)
                                                    for spec in settings.get_list("header_checks")]),
        "content_filter": lambda: ContentFilterStage(settings.get_str("content_filter")),
    })


# --- IMAP and POP3 --------------------------------------------------------------------------------
Sockets = dict[tuple[str, int], list[socket.socket]]  # (listen parameter, address index) -> sockets


async def start_imap(settings: Settings, authenticator: Any, store: Any, servers: list[Any], *,
                     user_ip: Any = None, serve: bool = True, sockets: Sockets | None = None,
                     adopters: dict[tuple[str, int], Any] | None = None,
                     on_end: Callable[[], None] = lambda: None) -> None:
    """Start the imap_listen (STARTTLS offered when a certificate is configured) and imaps_listen
    (implicit TLS) listeners; appends net.Server objects to ``servers``. ``await s.close()`` on
    shutdown stops listening and ends every session with ``* BYE Server shutting down.``
    ``serve`` False: bind only (for workers); ``sockets`` collects what was bound. ``adopters``:
    in a worker process, no listener but a net.Adopter per configured address, keyed like
    ``sockets``, for the connections the main process passes (``on_end`` when each ends)."""
    from pymailsrv.config.tls import server_context
    from pymailsrv.imap.server import ImapConfig, ImapServer
    from pymailsrv.net import Adopter, ConnectionRegistry, start_server

    plain, implicit = settings.get_listen("imap_listen"), settings.get_listen("imaps_listen")
    if not plain and not implicit:
        return
    cert, key = settings.get_str("tls_cert_file"), settings.get_str("tls_key_file")
    tls = server_context(cert, key) if cert else None
    config = ImapConfig.from_settings(settings)
    imap = ImapServer(config, authenticator, store, tls=tls, user_ip=user_ip)
    registry = ConnectionRegistry(idle_timeout=config.timeout)
    for param, name, addresses in (("imap_listen", "imap", plain), ("imaps_listen", "imaps", implicit)):
        if name == "imaps" and addresses and tls is None:
            log.warning("imaps_listen %s ignored: no tls_cert_file", ", ".join(map(str, addresses)))
            continue
        ssl = tls if name == "imaps" else None
        for index, listen in enumerate(addresses):
            if adopters is not None:
                adopters[(param, index)] = Adopter(imap.handle, ssl, registry=registry, name=name, on_end=on_end)
                servers.append(adopters[(param, index)])
                continue
            server = await start_server(imap.handle, listen.host, listen.port, ssl=ssl, registry=registry,
                                        name=name, serve=serve)
            servers.append(server)
            log.info("%s listening on %s:%d", name, server.host, server.port)
            if sockets is not None:
                sockets.setdefault((param, index), []).extend(server.server.sockets)


async def start_pop3(settings: Settings, authenticator: Authenticator, store: MailStore,
                     clock: Clock | None = None, *, user_ip: Any = None, serve: bool = True,
                     sockets: Sockets | None = None, adopters: dict[tuple[str, int], Any] | None = None,
                     on_end: Callable[[], None] = lambda: None) -> Pop3Server | None:
    """Start pop3_listen (with STLS when a certificate is set) and pop3s_listen (implicit TLS).
    Returns the server (``await server.close()`` on shutdown), or None when both are empty.
    ``serve``/``sockets``/``adopters``/``on_end``: as for start_imap."""
    from pymailsrv.clock import SystemClock
    from pymailsrv.config.tls import server_context
    from pymailsrv.pop3.options import Pop3Options, Pop3Services
    from pymailsrv.pop3.server import Pop3Server

    plain, implicit = settings.get_listen("pop3_listen"), settings.get_listen("pop3s_listen")
    if not plain and not implicit:
        return None
    cert = settings.get_str("tls_cert_file")
    tls = server_context(cert, settings.get_str("tls_key_file")) if cert else None
    services = Pop3Services(authenticator, store, clock or SystemClock())
    if user_ip is not None:
        services.userip = user_ip
    server = Pop3Server(Pop3Options.from_settings(settings, tls), services)
    for param, name, addresses in (("pop3_listen", "pop3", plain), ("pop3s_listen", "pop3s", implicit)):
        for index, address in enumerate(addresses):
            if adopters is not None:
                adopters[(param, index)] = server.adopter(implicit_tls=name == "pop3s", on_end=on_end)
                continue
            bound = await server.listen_on(address, implicit_tls=name == "pop3s", serve=serve)
            log.info("%s listening on %s:%d", name, address.host or "*", bound.port)
            if sockets is not None:
                sockets.setdefault((param, index), []).extend(bound.server.sockets)
    return server
