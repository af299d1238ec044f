"""SMTP worker processes (``worker_processes`` > 0): more cores for SMTP, still one queue manager.

The main process binds every SMTP listener but does not accept on them. Each worker is a child
process (``pymailsrv serve`` with the internal ``--worker`` option) that inherits those
listening sockets and accepts from them (the kernel gives each new connection to one of the
workers, so one that is busy takes fewer), runs the SMTP sessions with its own restriction engine
and Directory, and delivers to local Maildirs itself (the fast path). What it cannot finish
before the 250 it spools and hands to the main process, whose queue manager owns every retry,
bounce and outbound delivery. The log lines are the same, each process logging under its own
pid, as Postfix's smtpd processes do.

Each worker has one socketpair to the main process; one request per line:
  ``open IP``     → ``ok N`` | ``count N`` | ``rate N``: the per-client connection limits, counted
                    across all processes by the main one (anvil's job in Postfix); not asked for
                    exempt clients (smtpd_client_event_limit_exceptions, default mynetworks)
  ``close IP``    (no answer) the session admitted by ``open`` has ended
  ``pickup ID``   (no answer) queue file ID is spooled: the main queue manager takes it over
  ``auth IP LOGIN`` → ``ok DELAY`` | ``no TEXT``: failed-login throttling (auth/throttle.py)
                    counted once for SMTP AUTH in every worker and IMAP/POP3 in the main process
  ``auth-cancel IP LOGIN``, ``auth-ok IP LOGIN``, ``auth-failed IP LOGIN`` (no answer) how
                    that attempt ended
  ``userip SERVICE USER IP LIMIT`` → ``ok`` | ``no``: mail_max_userip_connections for IMAP or
                    POP3, counted across processes; ``userip-close SERVICE USER IP`` (no answer)
  ``ip-close PARAM IP`` (no answer) a passed IMAP/POP3 connection that the main process counted
                    for login_max_ip_connections has ended (PARAM and IP as it sent them)
(IP, LOGIN and USER percent-encoded, except in ``ip-close``.)
The IMAP/POP3 connections themselves come over a second socketpair, one per message with its
file descriptor: ``PARAM INDEX VERDICT IP``, VERDICT ``ok`` or the per-IP limit it is over
(``count``; the worker's session only says so), IP as the main process counted it (``-``: not).
EOF on the socketpair tells a worker that the main process is gone: it stops as on SIGTERM; the
main process releases what a dead worker held. A worker that dies is restarted after a pause,
as Postfix's master(8) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from pymailsrv.auth.base import AuthUnavailable, UserIpCounter
from pymailsrv.auth.throttle import LoginThrottle
from pymailsrv.log import get_logger
from pymailsrv.net.limits import ConnectionLimiter
from pymailsrv.net.networks import Network, in_networks

log = get_logger("master")

ANSWER_TIMEOUT = 5.0  # an anvil question the main process does not answer in time is allowed
RESTART_PAUSE = 1.0  # Postfix's master waits too before it restarts a failed service
RESTART_PAUSE_MAX = 60.0
STOP_TIMEOUT = 15.0


# --- the main process's side -------------------------------------------------------------------
@dataclass(eq=False)
class _Worker:
    slot: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failures: int = 0
    held: Counter[str] = field(default_factory=Counter)  # sessions admitted and not yet closed
    logins: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (service, user, ip)
    counted: Counter[tuple[str, str]] = field(default_factory=Counter)  # (listen parameter, ip) passed
    inbox: socket.socket | None = None  # where its IMAP/POP3 connections are passed
    ready: bool = False  # it said it serves
    sessions: int = 0  # IMAP/POP3 connections passed to it and not yet ended
    retired: bool = False  # a reload replaced it: it ends with its sessions and is not restarted


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
                 user_ip: Mapping[str, UserIpCounter] | None = None,
                 passed: Mapping[tuple[str, int], Sequence[socket.socket]] | None = None,
                 ip_limits: Mapping[str, ConnectionLimiter] | None = None) -> None:
        self.count = count
        # asyncio hands out wrappers that cannot accept; a dup shares the listening socket
        self.passed = {key: [_nonblocking(socket.socket(fileno=os.dup(s.fileno()))) for s in socks]
                       for key, socks in (passed or {}).items()}
        self._accepting = False
        self.ip_limits = ip_limits or {}  # per listen parameter of ``passed``
        self.throttle = throttle
        self.user_ip = user_ip or {}
        self.config_path = os.path.abspath(config_path)
        self.sockets = sockets
        self.limiter = limiter
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
        reader, writer = await asyncio.open_connection(sock=ours)
        answering = asyncio.get_running_loop().create_task(self._answer(worker, reader, writer))
        try:
            status = await proc.wait()
        finally:
            answering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answering
            writer.close()
            worker.ready, worker.sessions = False, 0
            inbox.close()
            worker.inbox = None
            self._update_accepting()
            self._release(worker)
        if not self._stopping and not (worker.retired and status == 0):
            how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
            log.warning("process pymailsrv/smtpd pid %d %s", proc.pid, how)

    async def _answer(self, worker: _Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            verb, _, arg = line.decode("ascii", "replace").strip().partition(" ")
            if verb == "open":
                verdict = self.limiter.open(arg)
                if not verdict:
                    worker.held[arg] += 1
                count = self.limiter.active(arg) + (1 if verdict else 0)
                writer.write(f"{verdict or 'ok'} {count}\n".encode())
            elif verb == "close" and worker.held[arg] > 0:
                worker.held[arg] -= 1
                self.limiter.close(arg)
            elif verb == "pickup":
                self._spawn(self._pickup(arg))
            elif verb == "gone":
                worker.sessions = max(0, worker.sessions - 1)
            elif verb == "ip-close":
                self._ip_close(worker, arg)
            elif verb == "ready":
                worker.ready = True
                self._update_accepting()
            elif verb.startswith("userip"):
                answer = self._userip(worker, verb, *(unquote(x) for x in arg.split(" ")))
                if answer:
                    writer.write(answer.encode() + b"\n")
            elif verb.startswith("auth"):
                answer = await self._auth(verb, *(unquote(x) for x in arg.split(" ", 1)))
                if answer:
                    writer.write(answer.encode() + b"\n")

    def _userip(self, worker: _Worker, verb: str, service: str = "", user: str = "", ip: str = "",
                limit: str = "0") -> str:
        counter = self.user_ip.get(service)
        key = (service, user, ip)
        if verb == "userip-close":
            if counter is not None and worker.logins[key] > 0:
                worker.logins[key] -= 1
                counter.close(user, ip)
            return ""
        if counter is None:
            return "ok"
        if not counter.try_open(user, ip, int(limit) if limit.isdigit() else 0):
            return "no"
        worker.logins[key] += 1
        return "ok"

    async def _auth(self, verb: str, ip: str = "", login: str = "") -> str:
        if self.throttle is None:
            return "ok 0" if verb == "auth" else ""
        if verb == "auth-cancel":
            self.throttle.cancel(ip, login)
        elif verb == "auth-ok":
            self.throttle.success(ip, login)
        elif verb == "auth-failed":
            self.throttle.failed(ip, login)
        elif verb == "auth":
            try:
                return f"ok {await self.throttle.admit(ip, login)}"
            except AuthUnavailable as exc:
                return f"no {exc}"
        return ""

    # --- IMAP/POP3 connections, accepted here and passed on ---------------------------------------
    def _update_accepting(self) -> None:
        """Accept while some worker can take connections; else they wait in the backlog."""
        want = not self._stopping and any(w.ready and w.inbox is not None for w in self.workers)
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
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the connection waits, we log
                log.warning("cannot accept a %s connection: %s", key[0].split("_")[0], exc.strerror or exc)
                return
            with conn:
                self._pass(conn, key)

    def _pass(self, conn: socket.socket, key: tuple[str, int]) -> None:
        """To the ready worker with the fewest sessions, with the per-IP limit's verdict (counted
        here, for every worker: login_max_ip_connections)."""
        param = key[0]
        limiter = self.ip_limits.get(param)
        ip = _peer_ip(conn)
        verdict = limiter.open(ip) if limiter is not None and ip else ""
        counted = limiter is not None and bool(ip) and not verdict
        message = f"{param} {key[1]} {verdict or 'ok'} {ip if counted else '-'}".encode()
        ready = [w for w in self.workers if w.ready and w.inbox is not None]
        for worker in sorted(ready, key=lambda w: w.sessions):
            assert worker.inbox is not None
            try:
                socket.send_fds(worker.inbox, [message], [conn.fileno()])
            except OSError:
                continue  # its inbox is full or gone: the next one
            worker.sessions += 1
            if counted:
                worker.counted[(param, ip)] += 1
            return
        if counted and limiter is not None:
            limiter.close(ip)
        log.warning("no worker process could take a %s connection; closed", param.split("_")[0])

    def _ip_close(self, worker: _Worker, arg: str) -> None:
        param, _, ip = arg.partition(" ")
        if worker.counted[(param, ip)] > 0:  # counted when it was passed
            worker.counted[(param, ip)] -= 1
            if not worker.counted[(param, ip)]:
                del worker.counted[(param, ip)]
            self.ip_limits[param].close(ip)

    async def _pickup(self, queue_id: str) -> None:
        try:
            await self.pickup(queue_id)
        except Exception:
            log.exception("%s: cannot take over the queue file", queue_id)

    def _release(self, worker: _Worker) -> None:
        """A worker ended: its sessions are gone."""
        for ip, n in worker.held.items():
            for _ in range(n):
                self.limiter.close(ip)
        worker.held.clear()
        for (service, user, ip), n in worker.logins.items():
            for _ in range(n):
                self.user_ip[service].close(user, ip)
        worker.logins.clear()
        for (param, ip), n in worker.counted.items():
            for _ in range(n):
                self.ip_limits[param].close(ip)
        worker.counted.clear()

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


def _nothing() -> None:
    pass


def _peer_ip(conn: socket.socket) -> str:
    try:
        return str(conn.getpeername()[0])
    except OSError:  # gone already; its worker will find out
        return ""


# --- a worker's side ---------------------------------------------------------------------------
def _nonblocking(sock: socket.socket) -> socket.socket:
    sock.setblocking(False)
    return sock


@dataclass(slots=True)
class WorkerSpec:
    slot: int
    channel: int
    inbox: int
    listen: dict[tuple[str, int], list[int]]
    passed: list[tuple[str, int]]

    @classmethod
    def parse(cls, text: str) -> WorkerSpec:
        raw = json.loads(text)
        return cls(int(raw["slot"]), int(raw["channel"]), int(raw["inbox"]),
                   {(str(p), int(i)): [int(fd) for fd in fds] for p, i, fds in raw["listen"]},
                   [(str(p), int(i)) for p, i in raw["passed"]])

    def sockets(self) -> dict[tuple[str, int], list[socket.socket]]:
        return {key: [socket.socket(fileno=fd) for fd in fds] for key, fds in self.listen.items()}


class MainChannel:
    """A worker's line to the main process (see the module notes)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._answers: list[asyncio.Future[str]] = []
        self.closed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, fd: int) -> MainChannel:
        reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while line := await self.reader.readline():
                if self._answers:
                    answer = self._answers.pop(0)
                    if not answer.done():
                        answer.set_result(line.decode("ascii", "replace").strip())
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            for answer in self._answers:
                if not answer.done():
                    answer.set_result("")
            self._answers.clear()

    def send(self, line: str) -> None:
        if not self.closed.is_set() and not self.writer.is_closing():
            self.writer.write(line.encode() + b"\n")

    async def ask(self, line: str) -> str:
        """The answer line, or "" when the main process is gone or slow."""
        if self.closed.is_set():
            return ""
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._answers.append(answer)
        self.send(line)
        try:
            return await asyncio.wait_for(asyncio.shield(answer), ANSWER_TIMEOUT)
        except TimeoutError:
            log.warning("no answer from the main process to %s", line.split()[0])
            return ""

    async def pickup(self, queue_id: str) -> None:
        self.send(f"pickup {queue_id}")

    async def close(self) -> None:
        self.writer.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class RemoteLimiter:
    """``smtp.limits.SessionLimiter`` of a worker: the main process counts (anvil)."""

    def __init__(self, channel: MainChannel, limiter: ConnectionLimiter) -> None:
        self.channel = channel
        self.exceptions: Sequence[Network] = limiter.exceptions
        self.off = not limiter.count_limit and not limiter.rate_limit

    def _asks(self, ip: str) -> bool:
        return not self.off and not in_networks(ip, self.exceptions)

    async def admit(self, ip: str) -> tuple[str, int]:
        if not self._asks(ip):
            return "", 0
        verdict, _, count = (await self.channel.ask(f"open {ip}")).partition(" ")
        if verdict in ("count", "rate"):
            return verdict, int(count) if count.isdigit() else 0
        return "", int(count) if count.isdigit() else 0

    def release(self, ip: str) -> None:
        if self._asks(ip):
            self.channel.send(f"close {ip}")


class RemoteThrottle:
    """``auth.throttle.LoginThrottle`` of a worker: the main process counts."""

    def __init__(self, channel: MainChannel, fallback: LoginThrottle) -> None:
        self.channel = channel
        self.fallback = fallback  # when the main process does not answer

    @staticmethod
    def _args(ip: str, login: str) -> str:
        return f"{quote(ip, safe='')} {quote(login, safe='')}"

    async def admit(self, remote_ip: str, login: str) -> float:
        answer = await self.channel.ask(f"auth {self._args(remote_ip, login)}")
        verdict, _, rest = answer.partition(" ")
        if verdict == "no":
            raise AuthUnavailable(rest)
        if verdict == "ok":
            try:
                return float(rest)
            except ValueError:
                pass
        return await self.fallback.admit(remote_ip, login)

    def cancel(self, remote_ip: str, login: str) -> None:
        self.channel.send(f"auth-cancel {self._args(remote_ip, login)}")

    def success(self, remote_ip: str, login: str) -> None:
        self.channel.send(f"auth-ok {self._args(remote_ip, login)}")

    def failed(self, remote_ip: str, login: str) -> None:
        self.channel.send(f"auth-failed {self._args(remote_ip, login)}")


class RemoteSessionCounter:
    """``auth.base.SessionCounter`` of a worker: the main process counts (one per service)."""

    def __init__(self, channel: MainChannel, service: str) -> None:
        self.channel = channel
        self.service = service

    def _args(self, user: str, ip: str) -> str:
        return f"{self.service} {quote(user, safe='')} {quote(ip, safe='')}"

    async def open(self, user: str, ip: str, limit: int) -> bool:
        answer = await self.channel.ask(f"userip {self._args(user, ip)} {limit}")
        return answer != "no"  # no answer (the main process is gone): do not lock users out

    def close(self, user: str, ip: str) -> None:
        self.channel.send(f"userip-close {self._args(user, ip)}")


class Inbox:
    """A worker's end of the connections the main process passes: each goes to the Adopter of
    its listener (net.Adopter); ``gone`` tells the main process when a session has ended."""

    def __init__(self, fd: int, adopters: Mapping[tuple[str, int], Any], channel: MainChannel) -> None:
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.adopters = adopters
        self.channel = channel
        asyncio.get_running_loop().add_reader(fd, self._receive)

    def _receive(self) -> None:
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(self.sock, 256, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if not msg and not fds:  # the main process is gone
                self.close()
                return
            param, index, verdict, ip = [*msg.decode("ascii", "replace").split(" "), "", "", ""][:4]
            adopter = self.adopters.get((param, int(index) if index.isdigit() else -1))
            counted = verdict == "ok" and ip != "-"
            ended = functools.partial(self.channel.send, f"ip-close {param} {ip}") if counted else _nothing
            for fd in fds:
                conn = socket.socket(fileno=fd)
                if adopter is None:
                    conn.close()
                    self.channel.send("gone")
                    ended()
                else:
                    adopter.adopt(conn, over_limit="" if verdict == "ok" else verdict, ended=ended)

    def stop(self) -> None:
        """Retiring: serve what was passed before the main process stopped passing, then close."""
        if self.sock.fileno() >= 0:
            self._receive()
        self.close()

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
