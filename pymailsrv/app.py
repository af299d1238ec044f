"""Builds the services from the configuration, starts every enabled listener, handles SIGTERM/SIGINT
(graceful stop), SIGHUP (reload: the configuration is read again, sessions in progress finish on
what they began with) and SIGUSR1 (the log file is reopened). The only module that wires concrete
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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymailsrv import eventloop
from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError
from pymailsrv.log import LogTarget, get_logger, setup_logging
from pymailsrv.sdnotify import Notifier

if TYPE_CHECKING:
    from pymailsrv.acme.service import AcmeService
    from pymailsrv.auth.authenticator import DirectoryAuthenticator
    from pymailsrv.auth.base import Authenticator
    from pymailsrv.clock import Clock
    from pymailsrv.db.base import Directory
    from pymailsrv.db.directory import SqlDirectory
    from pymailsrv.delivery.agents import NextHopTransport
    from pymailsrv.delivery.base import DeliveryResult
    from pymailsrv.managesieve.options import SieveOptions
    from pymailsrv.managesieve.server import ManageSieveServer
    from pymailsrv.meter import Hub
    from pymailsrv.net.limits import ConnectionLimiter
    from pymailsrv.ops.service import OpsService
    from pymailsrv.pipeline.runner import Pipeline
    from pymailsrv.policy.restrictions import RestrictionEngine
    from pymailsrv.pop3.server import Pop3Server
    from pymailsrv.queue.manager import QueueManager
    from pymailsrv.store.base import MailStore
    from pymailsrv.store.maildir import MaildirStore
    from pymailsrv.workers import WorkerPool, WorkerSpec

log = get_logger("master")

DEMO_DIR = "data"
DEMO_DOMAIN = "example.test"
DEMO_USER = f"demo@{DEMO_DOMAIN}"


# --- serve --------------------------------------------------------------------------------------
def serve(settings: Settings | None, *, config_path: str, demo: bool = False, worker: str = "") -> int:
    """``pymailsrv serve``; ``worker`` is the internal spec of an SMTP worker process
    (pymailsrv/workers/) that the main process starts itself."""
    if demo:
        config_path, password = prepare_demo()
        settings = Settings.load(config_path)
        print(f"pymailsrv demo: configuration {config_path}\n"
              f"  mailbox {DEMO_USER}  password {password}\n"
              f"  SMTP 127.0.0.1:2525 (MTA), 2587 (submission, STARTTLS), 2465 (SMTPS)\n"
              f"  IMAP 127.0.0.1:1143 (STARTTLS), 1993 (IMAPS); POP3 127.0.0.1:1110 (STLS), 1995 (POP3S)\n"
              f"  ManageSieve 127.0.0.1:4190 (STARTTLS)\n"
              f"  try: swaks --server 127.0.0.1:2525 --to {DEMO_USER}", file=sys.stderr, flush=True)
    assert settings is not None
    _setup_logging(settings)
    try:
        loop = eventloop.choose(settings.get_str("event_loop"))
        if worker:
            from pymailsrv.workers import WorkerSpec

            return loop.run(_serve_worker(settings, WorkerSpec.parse(worker)))
        return loop.run(_serve(settings, config_path))
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
    forwarder: Any = None  # proxy.forwarder.ProxyForwarder on an IMAP/POP3 front node
    shared: Any = None  # db.shared_state.SharedFailures with auth_throttle_shared

    async def close(self, *, store: bool = True) -> None:
        await self.restrictions.close()
        if self.forwarder is not None:
            await self.forwarder.close()
        if self.shared is not None:
            await self.shared.close()
        if store:
            await self.store.close()  # index snapshots still being written in the background
        await self.directory.close()


def _core(settings: Settings, store: MaildirStore | None = None) -> _Core:
    """``store``: a reload in this process keeps the store (its sessions' change feed)."""
    from pymailsrv.auth.authenticator import DirectoryAuthenticator
    from pymailsrv.clock import SystemClock
    from pymailsrv.db.directory import SqlDirectory
    from pymailsrv.policy.restrictions import RestrictionEngine
    from pymailsrv.store.maildir import MaildirStore

    clock = SystemClock()
    # fsyncs of concurrent deliveries and spool writes wait in this pool; the default (cpu+4)
    # serialises 20 SMTP sessions behind a handful of threads
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="io"))
    directory = SqlDirectory.from_settings(settings, clock=clock)
    if store is None:
        from pymailsrv.net.conn import live_connections

        # one client connection in the process: its delivery's fsyncs run on the loop, no thread hop
        store = MaildirStore(settings.get_str("virtual_mailbox_base"), settings.get_str("myhostname"), clock,
                             commit_inline=lambda: live_connections() <= 1)
    core = _Core(clock, directory, DirectoryAuthenticator(directory, settings, clock), store,
                 RestrictionEngine(settings, directory, clock=clock))
    _scale_out(settings, core)
    return core


def _scale_out(settings: Settings, core: _Core) -> None:
    """A front node's forwarder (proxy_backends, proxy_host_query) and the failed-login count
    shared through the database (auth_throttle_shared); docs/scale-out.md."""
    from pymailsrv.auth.shared_throttle import SharedThrottle
    from pymailsrv.db.proxy_hosts import SqlProxyHosts
    from pymailsrv.db.shared_state import SharedFailures
    from pymailsrv.proxy.forwarder import ProxyForwarder

    url = settings.expanded("database_url")
    query = settings.get_str("proxy_host_query").strip()
    core.forwarder = ProxyForwarder.from_settings(settings, SqlProxyHosts(url, query) if query else None)
    if settings.get_bool("auth_throttle_shared"):
        core.shared = SharedFailures(url, prefix=settings.expanded("database_table_prefix"))
        core.authenticator.throttle = SharedThrottle(core.authenticator.throttle, core.shared, settings,
                                                     core.clock)


def _shared_sessions(settings: Settings, user_ip: dict[str, Any], clock: Clock) -> Callable[[], Awaitable[None]]:
    """connection_limits_shared: the main process's IMAP and POP3 session counters (which the
    workers ask) also count in the database; returns what stops them (deletes this node's rows)."""
    from pymailsrv.auth.shared_sessions import SharedSessionCounter, node_id
    from pymailsrv.db.shared_sessions import SharedSessions

    if not settings.get_bool("connection_limits_shared"):
        async def nothing() -> None:
            return None
        return nothing
    store = SharedSessions(settings.expanded("database_url"), prefix=settings.expanded("database_table_prefix"))
    node = node_id(settings.get_str("myhostname"))
    counters = {service: SharedSessionCounter(local, store, service, node, clock,
                                              expiry=settings.get_seconds("connection_limits_shared_expiry"))
                for service, local in user_ip.items()}
    user_ip.update(counters)
    log.info("connection_limits_shared: IMAP and POP3 sessions counted in the database as node %s", node)

    async def stop() -> None:
        for counter in counters.values():
            await counter.stop()
        await store.close_store()
    return stop


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _reopen_log_on_usr1(settings: Settings, also: Callable[[], None] = lambda: None) -> None:
    """SIGUSR1: reopen the log file (logrotate moved it), as ``postfix logrotate`` has the
    daemons do; ``also`` passes the signal on to the worker processes."""
    def reopen() -> None:
        _setup_logging(settings)
        also()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, reopen)


def _setup_logging(settings: Settings) -> None:
    target = LogTarget(settings.get_str("log_target"), settings.get_str("syslog_facility"),
                       settings.get_str("syslog_address"), settings.get_str("syslog_format"),
                       settings.get_str("journald_socket"))
    try:
        setup_logging(level=settings.get_str("log_level"), log_file=settings.get_str("log_file"),
                      syslog_name=settings.get_str("syslog_name"), hostname=settings.get_str("myhostname"),
                      target=target)
    except (OSError, ValueError) as exc:  # a syslog host that does not resolve, a bad address
        raise ConfigError(f"log_target {target.kind}: {exc}") from None


# Parameters a reload cannot apply to a running main process: where it listens, what it holds
# open, how many processes it runs.
RESTART_ONLY = ("smtpd_listen", "submission_listen", "smtps_listen", "reinject_listen", "imap_listen",
                "imaps_listen", "pop3_listen", "pop3s_listen", "managesieve_listen", "worker_processes",
                "data_directory", "queue_directory", "virtual_mailbox_base", "database_url", "database_table_prefix",
                "default_process_limit", "myhostname", "acme_directory_url", "acme_http_listen", "acme_tls_listen",
                "lmtp_listen", "dovecot_auth_listen", "quota_status_listen", "service_socket_mode",
                "service_socket_group", "metrics_listen", "stats_listen", "stats_database", "stats_update_interval",
                "event_loop")


def _restart_only_changes(old: Settings, new: Settings) -> list[str]:
    return [name for name in RESTART_ONLY if old.raw(name) != new.raw(name)]


@dataclass(eq=False)
class _Serving:
    """The SMTP, IMAP and POP3 servers of one configuration in this process, on listening
    sockets (or connections passed to it) that outlive it: a reload starts the next ones beside
    it, and it stops accepting and ends once its sessions have (``retire``)."""

    core: _Core
    smtp: list[Any]
    imap: list[Any]
    pop3: Pop3Server | None
    owns_core: bool
    inbox: Any = None
    managesieve: ManageSieveServer | None = None

    @classmethod
    async def start(cls, settings: Settings, core: _Core, queue: Any, limiter: Any, user_ip: Mapping[str, Any], *,
                    owns_core: bool, smtp_sockets: Sockets, sockets: Sockets | None = None,
                    adopters: dict[tuple[str, int], Any] | None = None,
                    on_end: Callable[[], None] = lambda: None) -> _Serving:
        """``sockets``: the IMAP/POP3 listening sockets to accept on; ``adopters``: in a worker
        process, collects what serves the connections the main process passes instead."""
        smtp: list[Any] = []
        imap: list[Any] = []
        pop3 = managesieve = None
        try:
            smtp = await start_smtp(settings, authenticator=core.authenticator, restrictions=core.restrictions,
                                    queue=queue, directory=core.directory, limiter=limiter, inherited=smtp_sockets)
            await start_imap(settings, core.authenticator, core.store, imap, user_ip=user_ip["imap"],
                             forwarder=core.forwarder,
                             inherited=sockets, adopters=adopters, on_end=on_end)
            pop3 = await start_pop3(settings, core.authenticator, core.store, core.clock, user_ip=user_ip["pop3"],
                                    forwarder=core.forwarder,
                                    inherited=sockets, adopters=adopters, on_end=on_end)
            managesieve = await start_managesieve(settings, core.authenticator, core.clock, inherited=sockets,
                                                  adopters=adopters, on_end=on_end, forwarder=core.forwarder)
        except BaseException:
            await cls(core, smtp, imap, pop3, owns_core, managesieve=managesieve).close()
            raise
        return cls(core, smtp, imap, pop3, owns_core, managesieve=managesieve)

    def sessions(self) -> int:
        registries = {id(s.registry): s.registry for s in self.imap}
        for server in (self.pop3, self.managesieve):
            if server is not None:
                registries[id(server.registry)] = server.registry
        smtp: int = sum(len(s.spec.sessions) for s in self.smtp)
        # connections passed to this worker whose session has not begun (IMAP's and POP3's alike)
        starting: int = sum(a.starting for a in self.inbox.adopters.values()) if self.inbox is not None else 0
        return smtp + starting + sum(len(r) for r in registries.values())

    def stop_accepting(self) -> None:
        if self.inbox is not None:
            self.inbox.stop()
        for server in self.smtp:
            server.server.close()  # the listening socket lives on in the main process
        for listener in self.imap + (self.pop3.servers if self.pop3 is not None else []):
            listener.stop_accepting()
        if self.managesieve is not None:
            self.managesieve.stop_accepting()

    async def retire(self) -> None:
        """Stop accepting; end once every session has (a reload: they finish on what they began with)."""
        self.stop_accepting()
        while self.sessions():
            await asyncio.sleep(0.2)
        await self.close()

    async def close(self) -> None:
        """Stop: idle sessions are told so and closed, busy ones finish their command."""
        stops: list[Callable[[], Awaitable[None]]] = [_closer(s) for s in self.smtp]
        stops.extend(s.close for s in self.imap)
        if self.pop3 is not None:
            stops.append(self.pop3.close)
        if self.managesieve is not None:
            stops.append(self.managesieve.close)
        if self.inbox is not None:
            stops.append(_closer_sync(self.inbox.close))
        await _stop_all(stops)
        if self.owns_core:
            await self.core.close(store=False)


def _dup_sockets(sockets: Sockets) -> Sockets:
    """Copies of listening sockets for a server that closes its own when it stops accepting."""
    return {key: [socket.socket(fileno=os.dup(s.fileno())) for s in socks] for key, socks in sockets.items()}


def _write_pid(settings: Settings) -> str:
    """``queue_directory/pid/master.pid``, as Postfix's master writes it (``pymailsrv reload``)."""
    path = pid_path(settings)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="ascii") as fh:
        fh.write(f"{os.getpid():>10}\n")
    os.replace(path + ".tmp", path)
    return path


def pid_path(settings: Settings) -> str:
    return os.path.join(settings.get_str("queue_directory"), "pid", "master.pid")


def signal_master(settings: Settings, sig: int) -> int:
    """Send ``sig`` to the running main process (``pymailsrv reload``, ``log reopen``); its pid."""
    path = pid_path(settings)
    try:
        with open(path, encoding="ascii") as fh:
            pid = int(fh.read().strip())
        os.kill(pid, sig)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file: is pymailsrv running?") from None
    except ValueError:
        raise ConfigError(f"{path}: not a process id") from None
    except ProcessLookupError:
        raise ConfigError(f"{path}: process {pid} is not running") from None
    except PermissionError:
        raise ConfigError(f"cannot signal process {pid}: permission denied") from None
    return pid


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
    user_ip: dict[str, Any] = {"imap": UserIpCounter(), "pop3": UserIpCounter()}
    shared_sessions = _shared_sessions(settings, user_ip, core.clock)
    processes = settings.get_int("worker_processes")
    # this process holds every listening socket; workers, or the servers of the current
    # configuration in this process, serve them (a reload replaces those, not the sockets)
    sockets: Sockets = {}
    passed: Sockets = {}  # IMAP/POP3: with workers, accepted here and each connection passed on
    stops: list[Callable[[], Awaitable[None]]] = []
    workers = serving = acme = None
    hub = _metrics_hub(settings)
    try:
        queue = await QueueService.start(settings, core.directory, core.store, clock=core.clock)
        stops.append(queue.stop)
        smtp = await start_smtp(settings, authenticator=core.authenticator, restrictions=core.restrictions,
                                queue=queue.manager, directory=core.directory, limiter=limiter, serve=False)
        stops.extend(_closer(server) for server in smtp)
        sockets.update(listening_sockets(smtp))
        held: list[Any] = []
        await start_imap(settings, core.authenticator, core.store, held, serve=False, sockets=passed)
        pop3 = await start_pop3(settings, core.authenticator, core.store, core.clock, serve=False, sockets=passed)
        stops.extend(s.close for s in held)
        if pop3 is not None:
            stops.append(pop3.close)
        managesieve = await start_managesieve(settings, core.authenticator, core.clock, serve=False, sockets=passed)
        if managesieve is not None:
            stops.append(managesieve.close)
        if processes and (sockets or passed):
            from pymailsrv.workers import WorkerPool

            workers = WorkerPool(processes, config_path, sockets, limiter, queue.manager.pickup,
                                 core.authenticator.throttle, user_ip, passed, _ip_limits(held, pop3, managesieve),
                                 hub=hub)
            await workers.start()
            stops.append(workers.stop)  # stopped first: each finishes its sessions
        elif sockets or passed:
            serving = await _Serving.start(settings, core, queue.manager, limiter, user_ip, owns_core=False,
                                           smtp_sockets=_dup_sockets(sockets), sockets=_dup_sockets(passed))
        dovecot = await start_dovecot_services(settings, core, queue)
        stops.append(dovecot.close)
        acme = await _start_acme(settings, lambda: on_hup())  # a new certificate: reload, as SIGHUP
        if acme is not None:
            stops.append(acme.stop)
        ops = await _start_ops(settings, hub, core, queue, workers)
        if ops is not None:
            stops.insert(0, ops.stop)  # stopped last: the final counts of every worker are in
    except OSError as exc:
        await _stop_all(stops)
        await core.close()
        raise _bind_error(exc) from None
    except BaseException:
        await _stop_all(stops)
        await core.close()
        raise
    stop = _stop_event()
    _reopen_log_on_usr1(settings, workers.reopen_logs if workers is not None else lambda: None)
    notifier = Notifier()
    reloading = asyncio.Lock()
    retiring: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        async with reloading:
            notifier.reloading()
            try:
                await apply_new_configuration()
            finally:
                notifier.ready()

    async def apply_new_configuration() -> None:
        nonlocal settings, serving
        try:
            new = await asyncio.to_thread(Settings.load, config_path)
        except ConfigError as exc:
            log.error("reload: %s; still serving the previous configuration", exc)
            return
        log.info("reload -- version %s, configuration %s", __import__("pymailsrv").__version__, config_path)
        changed = _restart_only_changes(settings, new)
        if changed:
            log.warning("reload: %s changed: restart pymailsrv to apply", ", ".join(changed))
        _setup_logging(new)
        limiter.take_limits(make_limiter(new, core.clock))
        if workers is not None:
            await workers.reload()
        elif serving is not None:
            smtp_copies, copies = _dup_sockets(sockets), _dup_sockets(passed)
            try:
                fresh = _core(new, store=core.store)
                fresh.authenticator.throttle = serving.core.authenticator.throttle  # the counts go on
                following = await _Serving.start(new, fresh, queue.manager, limiter, user_ip, owns_core=True,
                                                 smtp_sockets=smtp_copies, sockets=copies)
            except (ConfigError, OSError) as exc:
                log.error("reload: %s; still serving the previous configuration", exc)
                for sock in (s for socks in [*smtp_copies.values(), *copies.values()] for s in socks):
                    sock.close()
                return
            retire = asyncio.get_running_loop().create_task(serving.retire())
            retiring.add(retire)
            retire.add_done_callback(retiring.discard)
            serving = following
        try:
            dovecot.reload(new)
        except ConfigError as exc:
            log.error("reload: %s; LMTP, the auth socket and quota-status keep the previous configuration", exc)
        settings = new
        queue.reload(new, core.directory, core.store)
        if acme is not None:
            acme.reconfigure(new)

    reloads: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = asyncio.get_running_loop().create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hup)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, _renew_certificate_on_usr2(acme))
    pid_file = _write_pid(settings)
    log.info("daemon started -- version %s, data directory %s, event loop %s", __import__("pymailsrv").__version__,
             settings.get_str("data_directory"), eventloop.running())
    notifier.ready()
    await stop.wait()
    log.info("terminating on signal")
    notifier.stopping()
    for task in reloads | retiring:
        task.cancel()
    await asyncio.gather(*reloads, *retiring, return_exceptions=True)
    if serving is not None:
        stops.append(serving.close)
    await _stop_all(stops)
    await shared_sessions()
    await core.close()
    with contextlib.suppress(OSError):
        os.unlink(pid_file)
    log.info("daemon stopped")
    return 0


async def _start_acme(settings: Settings, reload: Callable[[], None]) -> AcmeService | None:
    """The ACME client (main process only) when acme_directory_url is set: it installs each new
    certificate, then calls ``reload`` so every listener and worker loads it."""
    from pymailsrv.acme.service import AcmeService

    return await AcmeService.start(settings, reload)


def _metrics_hub(settings: Settings) -> Hub | None:
    """Where the counts of every process are added up, when metrics or statistics are on."""
    from pymailsrv.meter import METER, Hub

    return Hub(METER) if _ops_on(settings) else None


def _ops_on(settings: Settings) -> bool:
    return bool(settings.get_listen("metrics_listen") or settings.get_listen("stats_listen"))


async def _start_ops(settings: Settings, hub: Hub | None, core: _Core, queue: QueueService,
                     workers: WorkerPool | None) -> OpsService | None:
    """The metrics endpoint and the statistics page (main process only), when configured."""
    from pymailsrv.auth import pacrypt
    from pymailsrv.db.web_admins import WebAdmins
    from pymailsrv.ops.admin_auth import AdminLogin
    from pymailsrv.ops.service import OpsService

    if hub is None:
        return None
    login = None
    if settings.get_listen("stats_listen"):
        admins = WebAdmins(settings.get_str("database_url"), settings.get_str("database_table_prefix"))
        login = AdminLogin(admins, pacrypt.unprefixed_scheme(settings), core.authenticator.throttle, core.clock,
                           settings.get_seconds("auth_failure_delay"))
    return await OpsService.start(settings, hub, census=queue.manager.census,
                                  workers=workers.health if workers is not None else None, login=login)


def _renew_certificate_on_usr2(acme: AcmeService | None) -> Callable[[], None]:
    """SIGUSR2 (``pymailsrv cert renew``): renew the ACME certificate now."""
    if acme is not None:
        return acme.renew_now
    return lambda: log.warning("SIGUSR2 ignored: no ACME client (acme_directory_url is empty)")


async def _serve_worker(settings: Settings, spec: WorkerSpec) -> int:
    """A worker process: serves the inherited SMTP listeners (delivering on the fast path, handing
    the rest to the main process) and the IMAP/POP3 connections the main process passes it; stops
    on SIGTERM or when the main process is gone; on SIGHUP (a reload) it stops accepting and ends
    once its sessions have, while the next worker serves the new ones."""
    from pymailsrv import workers
    from pymailsrv.meter import METER
    from pymailsrv.smtp.server import make_limiter

    channel = await workers.MainChannel.connect(spec.channel)
    core = _core(settings)
    core.authenticator.throttle = workers.RemoteThrottle(channel, core.authenticator.throttle)
    stops: list[Callable[[], Awaitable[None]]] = [channel.close]
    if _ops_on(settings):  # the main process adds up every worker's counts
        stops.append(workers.MeterReports(channel, METER).close)
    serving: _Serving | None = None
    try:
        queue, stop_queue = await start_queue(settings, core.directory, core.store, clock=core.clock,
                                              worker=(spec.slot, channel.pickup))
        stops.append(stop_queue)
        limiter = workers.RemoteLimiter(channel, make_limiter(settings, core.clock))
        inherited = spec.sockets()
        adopters: dict[tuple[str, int], Any] = {}

        def ended() -> None:
            channel.send("gone")

        user_ip = {p: workers.RemoteSessionCounter(channel, p) for p in ("imap", "pop3")}
        serving = await _Serving.start(settings, core, queue, limiter, user_ip, owns_core=False,
                                       smtp_sockets=inherited, adopters=adopters, on_end=ended)
        serving.inbox = workers.Inbox(spec.inbox, adopters, channel)
        channel.send("ready")
        log.info("worker process %d serving %d listening socket(s) and %d passed, event loop %s", spec.slot,
                 sum(len(socks) for socks in inherited.values()), len(adopters), eventloop.running())
        stop = _stop_event()
        retire = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, retire.set)
        _reopen_log_on_usr1(settings)
        ends = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(channel.closed.wait())]
        await asyncio.wait([*ends, asyncio.ensure_future(retire.wait())], return_when=asyncio.FIRST_COMPLETED)
        if retire.is_set() and not any(end.done() for end in ends):
            log.info("worker process %d retiring: no new sessions; it stops when its %d session(s) end",
                     spec.slot, serving.sessions())
            finished = asyncio.ensure_future(serving.retire())
            await asyncio.wait([*ends, finished], return_when=asyncio.FIRST_COMPLETED)
            if finished.done():
                serving = None
                log.info("worker process %d retired: its sessions have ended", spec.slot)
            else:  # stopped meanwhile: the sessions left are closed below
                finished.cancel()
                await asyncio.gather(finished, return_exceptions=True)
        if channel.closed.is_set():
            log.warning("the main process is gone; stopping")
    finally:
        if serving is not None:
            await serving.close()
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


def _ip_limits(imap: list[Any], pop3: Pop3Server | None,
               managesieve: ManageSieveServer | None = None) -> dict[str, ConnectionLimiter]:
    """Per IMAP/POP3/ManageSieve listen parameter, the per-IP limiter (login_max_ip_connections) of
    its registry: with worker processes, the main process counts with it for all of them."""
    servers = imap + (pop3.servers if pop3 is not None else []) + (managesieve.servers if managesieve else [])
    return {f"{server.name}_listen": server.registry.limiter for server in servers}


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
    from pymailsrv.auth import pacrypt
    from pymailsrv.config import sample
    from pymailsrv.config.tls import generate_self_signed
    from pymailsrv.db import schema
    from pymailsrv.db.admin import create_maildir
    from pymailsrv.db.engine import make_engine, sqlite_file
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
    db_file = sqlite_file(url)
    if db_file is not None:
        os.chmod(db_file, 0o600)  # it holds the password hashes
    if not demo:
        return ""
    password = secrets.token_urlsafe(9)
    engine = make_engine(url)
    try:
        admin = Admin(engine, quota_multiplier=settings.get_int("quota_multiplier"),
                      table_prefix=settings.get_str("database_table_prefix"))
        await admin.add_domain(DEMO_DOMAIN, description="pymailsrv demo")
        hashed = await asyncio.to_thread(pacrypt.from_settings(settings).hash, password)
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
class _Delivery:
    """The queue manager's router and delivery agents, built from one configuration (a reload
    builds new ones; the old ones are closed once the deliveries that use them are done)."""

    def __init__(self, settings: Settings, directory: Directory, store: MailStore) -> None:
        from pymailsrv.db.vacation import SqlVacations
        from pymailsrv.delivery.agents import AgentTable
        from pymailsrv.delivery.dns import MxResolver, make_resolver
        from pymailsrv.delivery.maildir import MaildirAgent
        from pymailsrv.delivery.router import DirectoryRouter
        from pymailsrv.delivery.sieve_filter import SieveFilter
        from pymailsrv.delivery.smtp_client import SmtpClient
        from pymailsrv.delivery.vacation import VacationAgent
        from pymailsrv.policy.tables import open_table

        transport_tables = [open_table(spec, settings) for spec in settings.get_list("transport_maps")]
        password_tables = [open_table(spec, settings) for spec in settings.get_list("smtp_sasl_password_maps")]
        alias_tables = [open_table(spec, settings) for spec in settings.get_list("virtual_alias_maps")]
        self.tables = transport_tables + password_tables + alias_tables

        async def passwords(key: str) -> str | None:
            for table in password_tables:
                value = await table.get(key)
                if value:
                    return value
            return None

        self.backends = _lmtp_backends(settings)
        self.router = DirectoryRouter(settings, directory, transport_tables, alias_tables,
                                      self.backends.lmtp_nexthop if self.backends is not None else None)
        mx = MxResolver(make_resolver(settings.get_list("dns_nameservers")))
        self.smtp = SmtpClient(settings, mx, passwords=passwords if password_tables else None)
        self.vacations = SqlVacations.from_settings(settings)
        self.vacation = VacationAgent(self.vacations, hostname=settings.expanded("myhostname"),
                                      recipient_delimiter=settings.expanded("recipient_delimiter"))
        self.sieve = SieveFilter(settings)
        self.agents = AgentTable(MaildirAgent(settings, directory, store, self.sieve), arc_sealing(settings, self.smtp),
                                 self.vacation)

    async def close(self) -> None:
        from pymailsrv.policy.tables import close_table

        await self.smtp.close()
        await self.vacations.close()
        if self.backends is not None:
            await self.backends.close()
        for table in self.tables:
            await close_table(table)


def arc_sealing(settings: Settings, smtp: NextHopTransport) -> NextHopTransport:
    """The SMTP client, sealing forwarded mail with arc_signing_key when one is set."""
    from pymailsrv.delivery.arcseal import ArcSealingTransport
    from pymailsrv.pipeline.build import parse_item
    from pymailsrv.senderauth.keys import parse_key_value

    value = settings.get_str("arc_signing_key")
    if not value:
        return smtp
    if not any(parse_item(item, "smtpd_pipeline")[0] == "sender_auth" for item in settings.get_list("smtpd_pipeline")):
        # the seal vouches for our Authentication-Results: only that stage writes them (and
        # removes forged ones)
        raise ConfigError("arc_signing_key: needs the sender_auth stage in smtpd_pipeline")
    key = parse_key_value(value, "arc_signing_key")
    if key.algorithm != "rsa-sha256" or key.domain == "%":
        raise ConfigError("arc_signing_key: an RSA key of a named domain (RFC 8617 §3.7)")
    return ArcSealingTransport(smtp, key, settings.get_str("authserv_id"))
def _lmtp_backends(settings: Settings) -> Any:
    """lmtp_proxy on a front node: the backend choice of the IMAP/POP3 proxy, for delivery."""
    from pymailsrv.db.proxy_hosts import SqlProxyHosts
    from pymailsrv.proxy.backends import BackendChooser

    if not settings.get_bool("lmtp_proxy"):
        return None
    query = settings.get_str("proxy_host_query").strip()
    chooser = BackendChooser.from_settings(settings, SqlProxyHosts(settings.expanded("database_url"), query)
                                           if query else None)
    if not chooser.enabled:
        log.warning("lmtp_proxy = yes ignored: neither proxy_backends nor proxy_host_query is set")
        return None
    return chooser


async def start_queue(settings: Settings, directory: Directory, store: MailStore,
                      *, clock: Clock | None = None,
                      worker: tuple[int, Callable[[str], Awaitable[None]]] | None = None,
                      ) -> tuple[QueueManager, Callable[[], Awaitable[None]]]:
    """Build and start the spool, router, delivery agents and queue manager, and the control
    socket ``queue_directory/qmgr.sock``. Returns ``(queue, stop)``: ``queue`` implements
    ``queue.base.Queue`` (hand it to the SMTP listeners); ``await stop()`` at shutdown.

    ``worker`` = (slot, handoff) in an SMTP worker process: the manager is not started and has
    no control socket; what it spools goes to ``handoff`` (the main process's pickup)."""
    service = await QueueService.start(settings, directory, store, clock=clock, worker=worker)
    return service.manager, service.stop


class QueueService:
    """A started queue manager with its router, delivery agents and control socket."""

    def __init__(self, settings: Settings, manager: QueueManager, delivery: _Delivery, control: Any) -> None:
        self.settings = settings
        self.manager = manager
        self.delivery = delivery
        self.control = control
        self._closing: set[asyncio.Task[None]] = set()  # agents a reload replaced

    @classmethod
    async def start(cls, settings: Settings, directory: Directory, store: MailStore, *, clock: Clock | None = None,
                    worker: tuple[int, Callable[[str], Awaitable[None]]] | None = None) -> QueueService:
        from pymailsrv.clock import SystemClock
        from pymailsrv.queue.admin import socket_path
        from pymailsrv.queue.control import serve_control
        from pymailsrv.queue.manager import QueueManager
        from pymailsrv.queue.spool import FileSpool

        clk = clock or SystemClock()
        spool = FileSpool(settings.get_str("queue_directory"), clk, id_suffix=f"{worker[0]:X}" if worker else "")
        delivery = _Delivery(settings, directory, store)
        manager = QueueManager(settings, spool, delivery.router, delivery.agents, clk,
                               handoff=worker[1] if worker else None, pipeline=non_smtpd_pipeline(settings))
        delivery.vacation.attach(manager)
        delivery.sieve.attach(manager)
        control = None
        if worker is None:
            await manager.start()
            control = await serve_control(manager, socket_path(settings))
        return cls(settings, manager, delivery, control)

    def reload(self, settings: Settings, directory: Directory, store: MailStore) -> None:
        """The routes, agents and timings of a new configuration for what is delivered from now on;
        the old agents are closed once the deliveries in progress are done."""
        old, self.delivery = self.delivery, _Delivery(settings, directory, store)
        self.delivery.vacation.attach(self.manager)
        self.delivery.sieve.attach(self.manager)
        self.manager.reconfigure(settings, self.delivery.router, self.delivery.agents, non_smtpd_pipeline(settings))

        async def close_old() -> None:
            await self.manager.deliveries_done()
            await old.close()

        task = asyncio.get_running_loop().create_task(close_old())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def stop(self) -> None:
        from pymailsrv.queue.admin import socket_path

        if self.control is not None:
            self.control.close()
            await self.manager.stop()
        await asyncio.gather(*self._closing, return_exceptions=True)  # the manager is idle now
        await self.delivery.close()
        if self.control is not None:
            with contextlib.suppress(OSError):
                os.unlink(socket_path(self.settings))


def non_smtpd_pipeline(settings: Settings) -> Pipeline:
    """non_smtpd_pipeline: the stages of the mail the queue manager generates (bounces, notices)."""
    from pymailsrv.milter.stage import milter_stage, require_milter_stage
    from pymailsrv.pipeline.build import build_pipeline
    from pymailsrv.pipeline.senderauth import dkim_sign_stage
    from pymailsrv.pipeline.stages import ContentFilterStage
    from pymailsrv.policy.tables import open_table
    from pymailsrv.smtp.stages import HeaderChecksStage

    pipeline = build_pipeline("non_smtpd_pipeline", settings, {
        "header_checks": lambda: HeaderChecksStage([open_table(spec, settings)
                                                    for spec in settings.get_list("header_checks")]),
        "milters": lambda: milter_stage(settings, "non_smtpd_milters"),
        "content_filter": lambda: ContentFilterStage(settings.get_str("content_filter")),
        "dkim_sign": lambda: dkim_sign_stage(settings),
    })
    require_milter_stage(pipeline, settings, "non_smtpd_pipeline", "non_smtpd_milters")
    return pipeline


# --- IMAP and POP3 --------------------------------------------------------------------------------
Sockets = dict[tuple[str, int], list[socket.socket]]  # (listen parameter, address index) -> sockets


async def start_imap(settings: Settings, authenticator: Any, store: Any, servers: list[Any], *,
                     user_ip: Any = None, serve: bool = True, sockets: Sockets | None = None,
                     inherited: Sockets | None = None, adopters: dict[tuple[str, int], Any] | None = None,
                     on_end: Callable[[], None] = lambda: None, forwarder: Any = None) -> None:
    """Start the imap_listen (STARTTLS offered when a certificate is configured) and imaps_listen
    (implicit TLS) listeners; appends net.Server objects to ``servers``. ``await s.close()`` on
    shutdown stops listening and ends every session with ``* BYE Server shutting down.``
    ``serve`` False: bind only (for workers); ``sockets`` collects what was bound; ``inherited``:
    serve these listening sockets (keyed like ``sockets``) instead of binding. ``adopters``:
    in a worker process, no listener but a net.Adopter per configured address, keyed like
    ``sockets``, for the connections the main process passes (``on_end`` when each ends)."""
    from pymailsrv.imap.server import ImapConfig, ImapServer
    from pymailsrv.net import Adopter, start_server
    from pymailsrv.tls.contexts import listener_context

    plain, implicit = settings.get_listen("imap_listen"), settings.get_listen("imaps_listen")
    if not plain and not implicit:
        return
    tls = listener_context(settings, settings.get_str("tls_cert_file"), settings.get_str("tls_key_file"))
    config = ImapConfig.from_settings(settings)
    imap = ImapServer(config, authenticator, store, tls=tls, user_ip=user_ip, forwarder=forwarder)
    registry = imap.registry
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
            if inherited is not None:
                for sock in inherited.get((param, index), ()):
                    servers.append(await start_server(imap.handle, None, 0, ssl=ssl, registry=registry, name=name,
                                                      sock=sock))
                continue
            server = await start_server(imap.handle, listen.host, listen.port, ssl=ssl, registry=registry,
                                        name=name, serve=serve)
            servers.append(server)
            log.info("%s listening on %s:%d", name, server.host, server.port)
            if sockets is not None:
                sockets.setdefault((param, index), []).extend(server.server.sockets)


async def start_pop3(settings: Settings, authenticator: Authenticator, store: MailStore,
                     clock: Clock | None = None, *, user_ip: Any = None, serve: bool = True,
                     sockets: Sockets | None = None, inherited: Sockets | None = None,
                     adopters: dict[tuple[str, int], Any] | None = None,
                     on_end: Callable[[], None] = lambda: None, forwarder: Any = None) -> Pop3Server | None:
    """Start pop3_listen (with STLS when a certificate is set) and pop3s_listen (implicit TLS).
    Returns the server (``await server.close()`` on shutdown), or None when both are empty.
    ``serve``/``sockets``/``inherited``/``adopters``/``on_end``: as for start_imap."""
    from pymailsrv.clock import SystemClock
    from pymailsrv.pop3.options import Pop3Options, Pop3Services
    from pymailsrv.pop3.server import Pop3Server
    from pymailsrv.tls.contexts import listener_context

    plain, implicit = settings.get_listen("pop3_listen"), settings.get_listen("pop3s_listen")
    if not plain and not implicit:
        return None
    tls = listener_context(settings, settings.get_str("tls_cert_file"), settings.get_str("tls_key_file"))
    services = Pop3Services(authenticator, store, clock or SystemClock())
    if user_ip is not None:
        services.userip = user_ip
    services.forwarder = forwarder
    server = Pop3Server(Pop3Options.from_settings(settings, tls), services)
    for param, name, addresses in (("pop3_listen", "pop3", plain), ("pop3s_listen", "pop3s", implicit)):
        for index, address in enumerate(addresses):
            if adopters is not None:
                adopters[(param, index)] = server.adopter(implicit_tls=name == "pop3s", on_end=on_end)
                continue
            if inherited is not None:
                for sock in inherited.get((param, index), ()):
                    await server.listen_on(address, implicit_tls=name == "pop3s", sock=sock)
                continue
            bound = await server.listen_on(address, implicit_tls=name == "pop3s", serve=serve)
            log.info("%s listening on %s:%d", name, address.host or "*", bound.port)
            if sockets is not None:
                sockets.setdefault((param, index), []).extend(bound.server.sockets)
    return server


# --- ManageSieve ----------------------------------------------------------------------------------
def sieve_checker(settings: Settings | None = None) -> tuple[Callable[[str], str | None], tuple[str, ...]]:
    """CHECKSCRIPT/PUTSCRIPT's check (the Sieve compiler, as delivery uses it) and the SIEVE
    capability: the extensions scripts may require (sieve_extensions, else every one implemented)."""
    from pymailsrv.sieve import EXTENSIONS, SieveError, compile_script

    chosen = settings.get_list("sieve_extensions") if settings is not None else []
    extensions = tuple(e for e in EXTENSIONS if e in chosen) if chosen else tuple(EXTENSIONS)

    def check(text: str) -> str | None:
        try:
            compile_script(text, extensions)
        except SieveError as exc:
            return str(exc)  # "line L, column C: message"
        return None

    return check, extensions


async def start_managesieve(settings: Settings, authenticator: Authenticator, clock: Clock | None = None, *,
                            serve: bool = True, sockets: Sockets | None = None, inherited: Sockets | None = None,
                            adopters: dict[tuple[str, int], Any] | None = None,
                            on_end: Callable[[], None] = lambda: None,
                            forwarder: Any = None) -> ManageSieveServer | None:
    """Start managesieve_listen (RFC 5804, STARTTLS when a certificate is set); None when it is
    empty. ``await server.close()`` on shutdown. ``serve``/``sockets``/``inherited``/``adopters``/
    ``on_end``: as for start_imap (with workers, the main process accepts and passes connections)."""
    from pymailsrv.clock import SystemClock
    from pymailsrv.managesieve.options import SieveServices
    from pymailsrv.managesieve.server import ManageSieveServer

    addresses = settings.get_listen("managesieve_listen")
    if not addresses:
        return None
    options, check, extensions = _managesieve_config(settings)
    server = ManageSieveServer(options, SieveServices(authenticator, check, extensions, clock or SystemClock(),
                                                      forwarder=forwarder))
    try:
        for index, address in enumerate(addresses):
            key = ("managesieve_listen", index)
            if adopters is not None:
                adopters[key] = server.adopter(on_end=on_end)
            elif inherited is not None:
                for sock in inherited.get(key, ()):
                    await server.listen_on(address, sock=sock)
            else:
                bound = await server.listen_on(address, serve=serve)
                log.info("managesieve listening on %s:%d", address.host or "*", bound.port)
                if sockets is not None:
                    sockets.setdefault(key, []).extend(bound.server.sockets)
    except BaseException:
        await server.close()
        raise
    return server


def _managesieve_config(settings: Settings) -> tuple[SieveOptions, Callable[[str], str | None], tuple[str, ...]]:
    """What a configuration gives ManageSieve (at start and on reload): options, checker, extensions."""
    from pymailsrv.managesieve.options import SieveOptions
    from pymailsrv.tls.contexts import listener_context

    tls = listener_context(settings, settings.get_str("tls_cert_file"), settings.get_str("tls_key_file"))
    return (SieveOptions.from_settings(settings, tls), *sieve_checker(settings))
# --- Dovecot's services for Postfix: LMTP, the auth socket, quota-status ---------------------------
class _CurrentVirtual:
    """The queue's virtual (Maildir) transport as of now: LMTP delivers through the agent the
    queue manager uses (and what a reload gives it), not a copy of its own."""

    def __init__(self, queue: QueueService) -> None:
        self.queue = queue

    async def deliver(self, sender: str, recipients: Sequence[str], content: bytes) -> list[DeliveryResult]:
        return await self.queue.delivery.agents.virtual.deliver(sender, recipients, content)


@dataclass(slots=True)
class DovecotServices:
    """The started LMTP, auth-client and quota-status listeners, in the main process. A reload
    gives new connections the new settings (listen addresses and socket modes need a restart)."""

    core: _Core
    queue: QueueService
    auth: Any
    quota: Any
    lmtp: list[Any] = field(default_factory=list)
    others: list[Any] = field(default_factory=list)

    def reload(self, settings: Settings) -> None:
        """Raises ConfigError (a certificate or password scheme that does not load): the old
        settings stay."""
        from pymailsrv.auth.authenticator import DirectoryAuthenticator
        from pymailsrv.dovecot.quota_status import QuotaStatusOptions

        setup = _lmtp_setup(settings, self.core, self.queue)
        # the password settings anew, the failed-login counts go on (as for the listeners)
        authenticator = DirectoryAuthenticator(self.core.directory, settings, self.core.clock,
                                               throttle=self.core.authenticator.throttle)
        for server in self.lmtp:
            server.reconfigure(setup)
        self.auth.authenticator = authenticator
        self.auth.clients = self.quota.clients = tuple(settings.mynetworks())
        self.quota.options = QuotaStatusOptions.from_settings(settings)

    async def close(self) -> None:
        """Within the 10 s a stop step has: LMTP sessions finish the message they are receiving."""
        for server in self.lmtp:
            server.close()
        await asyncio.gather(*(s.wait_closed(timeout=6.0) for s in self.lmtp),
                             *(s.close(grace=3.0) for s in self.others))


def _lmtp_setup(settings: Settings, core: _Core, queue: QueueService) -> Any:
    from pymailsrv.lmtp.server import lmtp_setup

    return lmtp_setup(settings, directory=core.directory, store=core.store, delivery=_CurrentVirtual(queue),
                      clock=core.clock)


async def start_dovecot_services(settings: Settings, core: _Core, queue: QueueService) -> DovecotServices:
    """Start lmtp_listen, dovecot_auth_listen and quota_status_listen. Raises ConfigError."""
    from pymailsrv.dovecot.auth_server import AuthClientServer
    from pymailsrv.dovecot.quota_status import QuotaStatusOptions, QuotaStatusServer
    from pymailsrv.lmtp.server import socket_options, start_lmtp
    from pymailsrv.net.endpoints import endpoint_address, parse_endpoints
    from pymailsrv.net.server import start_endpoint_server

    mode, group = socket_options(settings)
    clients = settings.mynetworks()  # over TCP: the MTAs in front
    services = DovecotServices(core, queue, AuthClientServer(core.authenticator, clients),
                               QuotaStatusServer(core.directory, core.store,
                                                 QuotaStatusOptions.from_settings(settings), clients))
    try:
        services.lmtp = await start_lmtp(settings, _lmtp_setup(settings, core, queue))
        for param, name, handler in (("dovecot_auth_listen", "auth", services.auth.handle),
                                     ("quota_status_listen", "quota-status", services.quota.handle)):
            try:
                endpoints = parse_endpoints(settings.get_list(param))
            except ValueError as exc:
                raise ConfigError(f"{param}: {exc}") from None
            for endpoint in endpoints:
                try:
                    server = await start_endpoint_server(handler, endpoint, clock=core.clock, name=name,
                                                         mode=mode, group=group)
                except (OSError, KeyError) as exc:
                    raise ConfigError(f"{param}: cannot listen on {endpoint}: {exc}") from None
                services.others.append(server)
                log.info("%s listening on %s", name, endpoint_address(server.server))
    except BaseException:
        await services.close()
        raise
    return services
