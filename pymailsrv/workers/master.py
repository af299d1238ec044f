"""The main process's side: starts ``worker_processes`` worker processes, supervises and reloads
them, answers their requests (through ``anvil``) and passes them IMAP/POP3 connections."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymailsrv.auth.base import SessionCounter
from pymailsrv.auth.throttle import LoginThrottle
from pymailsrv.log import get_logger
from pymailsrv.meter import Hub, Snapshot
from pymailsrv.net.limits import ConnectionLimiter
from pymailsrv.workers.anvil import Anvil, Holdings

log = get_logger("master")

CHANNEL_LINE_LIMIT = 1 << 20  # a worker's metrics report is one line of JSON
RESTART_PAUSE = 1.0  # Postfix's master waits too before it restarts a failed service
RESTART_PAUSE_MAX = 60.0
STOP_TIMEOUT = 15.0
# accepted IMAP/POP3 connections held while every worker's inbox is full (the kernel queues only
# net.unix.max_dgram_qlen datagrams, often 10, per inbox): accepting stops meanwhile, and the rest
# wait in the listen backlog
WAITING_MAX = 64
INBOX_RETRY = 0.05  # seconds; besides the inboxes' writability, in case a wake-up is missed
_INBOX_FULL = (errno.EAGAIN, errno.ENOBUFS, errno.ETOOMANYREFS)  # try again later; other errors: gone


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    slot: int
    ready: bool  # serving
    retired: bool  # replaced by a reload, finishing its sessions
    restarts: int
    uptime: float
    report_age: float  # seconds since its last metrics report (-1: none yet); a stuck worker's grows


@dataclass(eq=False)
class _Worker:
    slot: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failures: int = 0
    holdings: Holdings = field(default_factory=Holdings)  # its share of the anvil counts
    inbox: socket.socket | None = None  # where its IMAP/POP3 connections are passed
    ready: bool = False  # it said it serves
    sessions: int = 0  # IMAP/POP3 connections passed to it and not yet ended
    retired: bool = False  # a reload replaced it: it ends with its sessions and is not restarted
    restarts: int = 0  # how often it died and was started again


class WorkerPool:
    """Starts ``count`` worker processes, answers their requests, and passes them connections.

    ``sockets`` (SMTP) are inherited: each worker accepts on them itself, taking every pending
    connection per wake-up; short sessions even out. ``passed`` (IMAP, POP3) are accepted here and
    each connection goes to the ready worker with the fewest sessions: long sessions that connect
    together (ten clients after a restart) would otherwise all stay on whichever worker woke first."""

    def __init__(self, count: int, config_path: str,
                 sockets: Mapping[tuple[str, int], Sequence[socket.socket]],
                 limiter: ConnectionLimiter, pickup: Callable[[str], Awaitable[None]],
                 throttle: LoginThrottle | None = None,
                 user_ip: Mapping[str, SessionCounter] | None = None,
                 passed: Mapping[tuple[str, int], Sequence[socket.socket]] | None = None,
                 ip_limits: Mapping[str, ConnectionLimiter] | None = None, hub: Hub | None = None) -> None:
        self.count = count
        self.hub = hub  # the workers' metrics reports are added up there
        # asyncio hands out wrappers that cannot accept; a dup shares the listening socket
        self.passed = {key: [_nonblocking(socket.socket(fileno=os.dup(s.fileno()))) for s in socks]
                       for key, socks in (passed or {}).items()}
        self._accepting = False
        self._waiting: deque[_Waiting] = deque()  # accepted, every inbox full
        self._watched: set[int] = set()  # inbox fds watched for writability while some wait
        self._retry: asyncio.TimerHandle | None = None
        self.anvil = Anvil(limiter, throttle, user_ip, ip_limits)
        self.config_path = os.path.abspath(config_path)
        self.sockets = sockets
        self.pickup = pickup
        self.workers = [_Worker(slot) for slot in range(1, count + 1)]
        self.retiring: list[_Worker] = []  # replaced by a reload, finishing their sessions
        self._next_slot = count + 1  # slots name queue files: never two live workers with one
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def start(self) -> None:
        for worker in self.workers:
            self._spawn(self._supervise(worker))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None and w.process.returncode is None]

    def _live(self) -> list[asyncio.subprocess.Process]:
        return [w.process for w in self.workers + self.retiring
                if w.process is not None and w.process.returncode is None]

    def reopen_logs(self) -> None:
        """SIGUSR1 to every worker: each reopens its log file."""
        for proc in self._live():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGUSR1)

    async def reload(self, ready_timeout: float = 30.0) -> bool:
        """A reload: start a new worker per slot (each reads the configuration anew); once they
        serve, the old ones get SIGHUP: they stop accepting, finish their sessions and exit, as
        Postfix's daemons do after ``postfix reload``. No connection is refused meanwhile: the
        listening sockets stay open here. False (and the old workers kept) when none of the new
        ones became ready."""
        old = self.workers
        fresh = [_Worker(self._next_slot + i) for i in range(self.count)]
        self._next_slot += self.count
        self.workers = old + fresh  # the old ones take connections until the new ones serve
        for worker in fresh:
            self._spawn(self._supervise(worker))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ready_timeout
        while not all(w.ready for w in fresh) and loop.time() < deadline and not self._stopping:
            await asyncio.sleep(0.05)
        if not any(w.ready for w in fresh):
            log.error("reload: no new worker process became ready; the running ones go on serving")
            self.workers = old
            self._retire(fresh)
            return False
        self.workers = fresh
        self._retire(old)
        return True

    def _retire(self, workers: list[_Worker]) -> None:
        for worker in workers:
            worker.retired, worker.ready = True, False
            self.retiring.append(worker)
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGHUP)
        self._update_accepting()

    async def _supervise(self, worker: _Worker) -> None:
        pause = RESTART_PAUSE
        while not self._stopping and not worker.retired:
            try:
                await self._run_once(worker)
            except OSError as exc:
                log.warning("cannot start an SMTP worker process: %s", exc.strerror or exc)
            if self._stopping or worker.retired:
                if worker in self.retiring:
                    self.retiring.remove(worker)
                return
            worker.restarts += 1
            quick = time.monotonic() - worker.started < 10
            pause = min(RESTART_PAUSE_MAX, pause * 2) if quick else RESTART_PAUSE
            await asyncio.sleep(pause)

    async def _run_once(self, worker: _Worker) -> None:
        ours, theirs = socket.socketpair()
        inbox, inbox_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = {key: [s.fileno() for s in socks] for key, socks in self.sockets.items()}
        spec = {"slot": worker.slot, "channel": theirs.fileno(), "inbox": inbox_theirs.fileno(),
                "listen": [[param, index, fd_list] for (param, index), fd_list in fds.items()],
                "passed": [[param, index] for param, index in self.passed]}
        pass_fds = [theirs.fileno(), inbox_theirs.fileno(), *(fd for fd_list in fds.values() for fd in fd_list)]
        try:
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pymailsrv", "--config", self.config_path, "serve",
                "--worker", json.dumps(spec), pass_fds=pass_fds, stdin=asyncio.subprocess.DEVNULL)
        except BaseException:
            ours.close()
            inbox.close()
            raise
        finally:
            theirs.close()
            inbox_theirs.close()
        if worker.retired:  # replaced while it was starting
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGHUP)
        inbox.setblocking(False)
        worker.inbox = inbox
        worker.started = time.monotonic()
        proc = worker.process
        reader, writer = await asyncio.open_connection(sock=ours, limit=CHANNEL_LINE_LIMIT)
        answering = asyncio.get_running_loop().create_task(self._answer(worker, reader, writer))
        try:
            status = await proc.wait()
            # what it wrote last (its final metrics report) is still to be read
            await asyncio.wait([answering], timeout=1.0)
        finally:
            answering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answering
            writer.close()
            worker.ready, worker.sessions = False, 0
            if inbox.fileno() in self._watched:  # before the descriptor is closed (and reused)
                asyncio.get_running_loop().remove_writer(inbox.fileno())
                self._watched.discard(inbox.fileno())
            inbox.close()
            worker.inbox = None
            self._update_accepting()
            self.anvil.release(worker.holdings)
            if self.hub is not None:
                self.hub.retire(worker.slot)
        if not self._stopping and not (worker.retired and status == 0):
            how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
            log.warning("process pymailsrv/smtpd pid %d %s", proc.pid, how)

    async def _answer(self, worker: _Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            verb, _, arg = line.decode("ascii", "replace").strip().partition(" ")
            if verb == "pickup":
                self._spawn(self._pickup(arg))
            elif verb == "gone":
                worker.sessions = max(0, worker.sessions - 1)
            elif verb == "ready":
                worker.ready = True
                self._update_accepting()
            elif verb == "metrics":
                self._metrics(worker, arg)
            else:
                answer = await self.anvil.answer(worker.holdings, verb, arg)
                if answer:
                    writer.write(answer.encode() + b"\n")

    def _metrics(self, worker: _Worker, arg: str) -> None:
        if self.hub is None:
            return
        try:
            self.hub.update(worker.slot, Snapshot.from_json(json.loads(arg)), time.monotonic())
        except (ValueError, TypeError, AttributeError):
            log.warning("worker process %d sent an unreadable metrics report", worker.slot)

    def health(self) -> list[WorkerHealth]:
        """Every worker process, serving or retiring, for the metrics."""
        now = time.monotonic()
        reported = self.hub.reported if self.hub is not None else {}
        return [WorkerHealth(w.slot, w.ready, w.retired, w.restarts, now - w.started if w.started else 0.0,
                             now - reported[w.slot] if w.slot in reported else -1.0)
                for w in self.workers + self.retiring]

    # --- IMAP/POP3 connections, accepted here and passed on ---------------------------------------
    def _update_accepting(self) -> None:
        """Accept while some worker can take connections and fewer than WAITING_MAX wait; else
        they wait in the backlog."""
        self._flush()
        want = (not self._stopping and len(self._waiting) < WAITING_MAX
                and any(w.ready and w.inbox is not None for w in self.workers))
        if want == self._accepting:
            return
        loop = asyncio.get_running_loop()
        for key, socks in self.passed.items():
            for sock in socks:
                if want:
                    loop.add_reader(sock.fileno(), self._accept, sock, key)
                else:
                    loop.remove_reader(sock.fileno())
        self._accepting = want

    def _accept(self, listener: socket.socket, key: tuple[str, int]) -> None:
        for _ in range(64):  # what is pending now; then back to the loop
            if len(self._waiting) >= WAITING_MAX:  # every inbox is full: the rest wait in the backlog
                return
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the connection waits, we log
                log.warning("cannot accept a %s connection: %s", key[0].split("_")[0], exc.strerror or exc)
                return
            param = key[0]
            ip = _peer_ip(conn)
            verdict, counted = self.anvil.admit_passed(param, ip)
            waiting = _Waiting(conn, param, ip if counted else "",
                               f"{param} {key[1]} {verdict or 'ok'} {ip if counted else '-'}".encode())
            if self._waiting or not self._pass(waiting):  # in their order
                self._waiting.append(waiting)
                self._update_accepting()  # watch the inboxes; stop accepting at WAITING_MAX

    def _pass(self, waiting: _Waiting) -> bool:
        """To the ready worker with the fewest sessions, with the per-IP limit's verdict (counted
        here, for every worker: login_max_ip_connections). False when every inbox is full: it
        waits. A connection that no worker can take for another reason (gone) is closed."""
        ready = [w for w in self.workers if w.ready and w.inbox is not None]
        full = False
        for worker in sorted(ready, key=lambda w: w.sessions):
            assert worker.inbox is not None
            try:
                socket.send_fds(worker.inbox, [waiting.message], [waiting.conn.fileno()])
            except OSError as exc:
                full = full or exc.errno in _INBOX_FULL
                continue  # its inbox is full or gone: the next one
            worker.sessions += 1
            if waiting.ip:
                self.anvil.passed_to(worker.holdings, waiting.param, waiting.ip)
            waiting.conn.close()  # the worker has its own descriptor now
            return True
        if (full or not ready) and not self._stopping:
            return False
        self._drop(waiting)
        log.warning("no worker process could take a %s connection; closed", waiting.param.split("_")[0])
        return True

    def _drop(self, waiting: _Waiting) -> None:
        waiting.conn.close()
        if waiting.ip:
            self.anvil.not_passed(waiting.param, waiting.ip)

    def _flush(self) -> None:
        """Pass the waiting connections, oldest first, while an inbox takes them; watch the
        inboxes (and a timer) while some still wait."""
        if self._stopping:
            while self._waiting:
                self._drop(self._waiting.popleft())
        while self._waiting and self._pass(self._waiting[0]):
            self._waiting.popleft()
        loop = asyncio.get_running_loop()
        inboxes = {w.inbox.fileno() for w in self.workers
                   if w.ready and w.inbox is not None} if self._waiting else set()
        for fd in self._watched - inboxes:
            loop.remove_writer(fd)
        for fd in inboxes - self._watched:
            loop.add_writer(fd, self._writable)
        self._watched = inboxes
        if self._retry is not None:
            self._retry.cancel()
        # no ready worker: its "ready" calls back here
        self._retry = loop.call_later(INBOX_RETRY, self._writable) if inboxes else None

    def _writable(self) -> None:
        self._retry = None
        self._update_accepting()

    async def _pickup(self, queue_id: str) -> None:
        try:
            await self.pickup(queue_id)
        except Exception:
            log.exception("%s: cannot take over the queue file", queue_id)

    async def stop(self) -> None:
        """SIGTERM to every worker (each finishes its sessions), SIGKILL after STOP_TIMEOUT."""
        self._stopping = True
        self._update_accepting()
        procs = self._live()
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if procs:
            _, late = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs], timeout=STOP_TIMEOUT)
            for proc in procs:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            if late:
                await asyncio.wait(late, timeout=5)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for socks in self.passed.values():  # our duplicates; the servers close the originals
            for sock in socks:
                sock.close()


@dataclass(slots=True)
class _Waiting:
    """An accepted connection not yet passed: what its worker is told, and its per-IP count."""

    conn: socket.socket
    param: str
    ip: str  # counted for login_max_ip_connections ("" not counted)
    message: bytes


def _peer_ip(conn: socket.socket) -> str:
    try:
        return str(conn.getpeername()[0])
    except OSError:  # gone already; its worker will find out
        return ""


def _nonblocking(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    return sock
