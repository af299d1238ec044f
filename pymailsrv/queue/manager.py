"""The queue manager: takes mail from SMTP, delivers it, retries, bounces (Postfix's qmgr).

Implementation notes:
- ``submit`` returns only when every recipient is delivered or the message is in the spool
  durably: "250 means durable". Fast path: when every recipient routes to a local Maildir and no
  content filter applies, the message is delivered before anything is spooled; if any recipient is
  not delivered, the message is spooled with the finished recipients recorded, and the rest goes
  through the normal retry path.
- Per-recipient results are appended to the spool file as each destination finishes, so a retry
  never repeats a finished recipient. When an attempt finishes every recipient successfully the
  record is skipped and the file removed at once: a crash in between repeats a delivery at most
  once (DESIGN.md, Durability).
- Retries back off exponentially from minimal_backoff_time to maximal_backoff_time; after
  maximal_queue_lifetime (bounce_queue_lifetime for null-sender mail) the message expires and is
  returned. One delay notice after delay_warning_time. All timing goes through the Clock.
- Concurrency: at most default_process_limit messages in delivery, and per destination (transport
  and next hop; per mailbox for virtual delivery) the configured concurrency limit.
- A notice about a null-sender message goes to postmaster (or nowhere); a notice about a notice to
  postmaster is dropped: a bounce is never bounced in a loop.
- Notices go through the message stages of the pipeline for generated mail (non_smtpd_pipeline)
  before they are spooled: a stage may change them, hold them, or stop them (reject, discard;
  logged). When a stage defers a failure notice, the message stays queued and the notice is tried
  again with its next attempt.
- Which content filter a message goes to is decided before it is queued (the pipeline's
  content_filter stage) and recorded in its envelope; the manager follows ``Envelope.filter``.
- In an SMTP worker process (worker_processes > 1) the manager is not started: it delivers on the
  fast path and spools the rest, then ``handoff`` tells the main process, whose manager ``pickup``s
  the file and owns every retry, bounce and outbound delivery. The main manager also looks for
  files it was not told about (a handoff lost with a dying process) once per queue_run_delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymailsrv import meter
from pymailsrv.clock import Clock
from pymailsrv.config.settings import Settings
from pymailsrv.delivery.base import Agents, DeliveryResult, DsnOptions, Route, Router
from pymailsrv.errors import NotFound, TemporaryFailure
from pymailsrv.log import fmt_delay, get_logger
from pymailsrv.pipeline.base import ACCEPT, LocalSession, Transaction, Verdict
from pymailsrv.pipeline.message import Message
from pymailsrv.pipeline.runner import EMPTY, Pipeline, one_line
from pymailsrv.queue.base import STATES, CorruptFile, Envelope, FinalStatus, QueueFile, Recipient, Spool
from pymailsrv.queue.bounce import Kind, NoticeInfo, RecipientReport, build_notice, wants_notice
from pymailsrv.types import QueueId

log = get_logger("qmgr")
bounce_log = get_logger("bounce")

_INLINE_READ = 256 * 1024
_AGENT_NAMES = ("virtual", "smtp", "lmtp", "error", "discard", "vacation")  # larger contents are read in a thread
_LOCAL_AGENTS = ("virtual", "vacation")  # delivered on the fast path, before the 250
_AGENT_LOGS = {name: get_logger(name) for name in _AGENT_NAMES}  # not a getLogger (a lock) per line


@dataclass(slots=True)
class _Outcome:
    index: int
    final: str
    route: Route
    result: DeliveryResult
    started: float
    finished: float


def _dsn_options(env: Envelope, items: list[tuple[int, str]]) -> DsnOptions | None:
    """The RFC 3461 parameters to pass on for these recipients, or None when there are none."""
    rcpts = [env.recipients[i] for i, _ in items]
    if not (env.dsn_ret or env.dsn_envid or any(r.notify or r.orcpt for r in rcpts)):
        return None
    return DsnOptions(ret=env.dsn_ret, envid=env.dsn_envid, notify=tuple(r.notify for r in rcpts),
                      orcpt=tuple(r.orcpt for r in rcpts))


class QueueManager:
    """Implements ``queue.base.Queue``; also the control surface for ``pymailsrv queue``."""

    def __init__(self, settings: Settings, spool: Spool, router: Router, agents: Agents,
                 clock: Clock, *, hostname: str | None = None, fast_path: bool = True,
                 handoff: Callable[[QueueId], Awaitable[None]] | None = None,
                 pipeline: Pipeline = EMPTY) -> None:
        self.settings = settings
        self.handoff = handoff
        self.pipeline = pipeline  # the stages of the mail generated here (non_smtpd_pipeline)
        self.spool = spool
        self.router = router
        self.agents = agents
        self.clock = clock
        self.hostname = hostname or settings.expanded("myhostname")
        self.fast_path = fast_path
        self.entries: dict[QueueId, QueueFile] = {}
        self._busy: set[QueueId] = set()
        self._spooling: set[QueueId] = set()  # being put by this manager: not strays (see _put)
        self._ops: dict[QueueId, str] = {}
        self._heap: list[tuple[float, QueueId]] = []
        self._ready: asyncio.Queue[QueueId] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sems: dict[str, list[Any]] = {}  # destination -> [Semaphore, users]
        self._stopping = False
        self._seq = 0
        self._configure(settings)

    def reconfigure(self, settings: Settings, router: Router, agents: Agents, pipeline: Pipeline) -> None:
        """A reload: new timings, limits, routes, agents and stages for what is scheduled from now
        on; deliveries in progress finish with what they started with."""
        self.settings = settings
        self.router = router
        self.agents = agents
        self.pipeline = pipeline
        self._configure(settings)
        self._wake.set()  # a shorter queue_run_delay or backoff applies at once

    def _configure(self, s: Settings) -> None:
        self.min_backoff = s.get_seconds("minimal_backoff_time")
        self.max_backoff = max(self.min_backoff, s.get_seconds("maximal_backoff_time"))
        self.run_delay = s.get_seconds("queue_run_delay")
        self.lifetime = s.get_seconds("maximal_queue_lifetime")
        self.bounce_lifetime = s.get_seconds("bounce_queue_lifetime")
        self.warn_after = s.get_seconds("delay_warning_time")
        self.process_limit = s.get_int("default_process_limit")
        self.dest_limit = s.get_int("default_destination_concurrency_limit")
        self.limits = {t: s.get_int(f"{t}_destination_concurrency_limit") for t in ("virtual", "smtp", "lmtp")}
        self.null_failures = s.get_str("notify_null_sender_failures")
        self.postmaster = s.expanded("bounce_notice_recipient") or "postmaster"

    # --- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover the spool and start the scheduler and the delivery workers."""
        removed = self.spool.clean_incoming()
        if removed:
            log.info("removed %d unfinished incoming file(s)", removed)
        n = 0
        for qf in self.spool.scan():
            n += 1
            self.entries[qf.queue_id] = qf
            if qf.state == "active":
                self._ready.put_nowait(qf.queue_id)
            elif qf.state == "deferred":
                heapq.heappush(self._heap, (qf.next_attempt, qf.queue_id))
        if n:
            log.info("recovered %d queued message(s)", n)
        self._spawn(self._scheduler())
        for _ in range(self.process_limit):
            self._spawn(self._worker())

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking work, let deliveries in progress finish (up to ``grace`` seconds: a
        delivery cut short may be repeated after restart), then cancel what is left."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._busy and loop.time() < deadline:
            await asyncio.sleep(0.01)
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def deliveries_done(self, timeout: float = 600.0) -> None:
        """Wait (bounded) until the deliveries in progress now have ended (a reload closes the
        agents they use afterwards)."""
        busy = set(self._busy)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while busy & self._busy and loop.time() < deadline:
            await asyncio.sleep(0.1)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Tests: wait until nothing is ready or in delivery (deferred mail may remain)."""
        def due() -> bool:
            now = self.clock.time()
            return any(t <= now and (qf := self.entries.get(q)) is not None and qf.state == "deferred"
                       and qf.next_attempt == t for t, q in self._heap)

        async def idle() -> None:
            for _ in range(3):
                await asyncio.sleep(0)
            while self._busy or not self._ready.empty() or due():
                await asyncio.sleep(0.001)
        await asyncio.wait_for(idle(), timeout)

    def census(self) -> dict[str, tuple[int, float]]:
        """state (active, deferred, hold) -> (messages, arrival time of the oldest or 0): the
        queue this manager owns, for the metrics and the statistics page."""
        out = {state: (0, 0.0) for state in ("active", "deferred", "hold")}
        for qf in self.entries.values():
            n, oldest = out.get(qf.state, (0, 0.0))
            arrival = qf.envelope.arrival
            out[qf.state] = (n + 1, min(oldest, arrival) if oldest and arrival else oldest or arrival)
        return out

    # --- submission -----------------------------------------------------------------------------
    def new_queue_id(self) -> QueueId:
        """A fresh queue id, for a caller that wants to log under it before ``submit``."""
        return self.spool.new_id()

    async def submit(self, envelope: Envelope, content: bytes, *, queue_id: QueueId | None = None) -> QueueId:
        if not envelope.arrival:
            envelope.arrival = self.clock.time()
        qid = queue_id or self.spool.new_id()
        if self._fast_path_allowed(envelope):
            done = await self._try_fast(qid, envelope, content)
            if done:
                return qid
        return await self.enqueue(envelope, content, queue_id=qid)

    async def enqueue(self, envelope: Envelope, content: bytes, *, queue_id: QueueId | None = None,
                      records: list[dict[str, Any]] | None = None) -> QueueId:
        """Spool a message durably and schedule it (mail from SMTP, notices, the fast path's rest)."""
        if not envelope.arrival:
            envelope.arrival = self.clock.time()
        state = "hold" if envelope.hold else "active"
        qid = await self._put(envelope, content, state, records, queue_id or self.spool.new_id())
        if self.handoff is not None:
            await self.handoff(qid)
            return qid
        qf = QueueFile(qid, state, envelope, len(content), -1)  # content offset found on first read
        for rec in records or ():
            qf.apply(rec)
        self.entries[qid] = qf
        if state == "active":
            self._ready.put_nowait(qid)
        else:
            log.info("%s: from=<%s>, size=%d, nrcpt=%d (queue hold)", qid, envelope.sender, len(content),
                     len(envelope.recipients))
        return qid

    async def _put(self, envelope: Envelope, content: bytes, state: str,
                   records: list[dict[str, Any]] | None, qid: QueueId) -> QueueId:
        """``spool.put`` with the id marked as ours meanwhile: the file is in active/ before put
        returns (a group commit renames, then syncs the names), and the stray scan must not take
        it over. Callers put it in ``entries`` before their next await."""
        self._spooling.add(qid)
        try:
            return await self.spool.put(envelope, content, state=state, records=records, queue_id=qid)
        finally:
            self._spooling.discard(qid)

    def _fast_path_allowed(self, env: Envelope) -> bool:
        return self.fast_path and not env.hold and not env.filter

    async def _try_fast(self, qid: QueueId, env: Envelope, content: bytes) -> bool:
        """Deliver to local Maildirs before answering; False if the message must be spooled."""
        try:
            plan = await self._plan(env, {})
        except TemporaryFailure:
            return False
        if not plan or any(route.transport not in _LOCAL_AGENTS for _, _, route in plan):
            return False
        qf = QueueFile(qid, "active", env, len(content), -1)
        self._log_active(qf)
        if len(plan) == 1:  # the common case: no task and gather callbacks (3 loop callbacks)
            outcomes = [await self._deliver_one(*plan[0], env.sender, content)]
        else:
            outcomes = await asyncio.gather(*(self._deliver_one(i, f, r, env.sender, content)
                                              for i, f, r in plan))
        if all(o.result.outcome == "sent" for o in outcomes):
            for o in outcomes:
                self._log_result(qf, o)
            try:
                await self._notify_success(qf, content, outcomes)
            except TemporaryFailure:  # the mail is delivered: do not make the client send it again
                log.error("%s: cannot queue the delivery status notification", qid)
            log.info("%s: removed", qid)
            return True
        # Some recipient is not done: spool with the finished ones recorded, conclude later.
        records = [self._record(o) for o in outcomes]
        await self.enqueue_after_fast(qf, content, records, outcomes)
        return True

    async def enqueue_after_fast(self, qf: QueueFile, content: bytes, records: list[dict[str, Any]],
                                 outcomes: Sequence[_Outcome]) -> None:
        qid = await self._put(qf.envelope, content, "active", records, qf.queue_id)
        for rec in records:
            qf.apply(rec)
        if self.handoff is None:
            self.entries[qid] = qf
            self._busy.add(qid)
        for o in outcomes:
            self._log_result(qf, o)
        await self._notify_success(qf, content, outcomes)
        if self.handoff is not None:  # the main process concludes it (see ``pickup``)
            await self.handoff(qid)
            return
        incomplete = {o.index: (o.result.dsn, o.result.text) for o in outcomes
                      if o.result.outcome == "deferred"}
        self._spawn(self._finish_fast(qf, content, incomplete))

    async def _finish_fast(self, qf: QueueFile, content: bytes, incomplete: dict[int, tuple[str, str]]) -> None:
        try:
            await self._conclude(qf, content, incomplete)
        finally:
            self._busy.discard(qf.queue_id)
            await self._apply_op(qf)

    async def pickup(self, queue_id: str) -> None:
        """Take over a file another process spooled (an SMTP worker's handoff): schedule it as if
        submitted here; one that already holds fast-path results is concluded like ours."""
        qid = QueueId(queue_id)
        if qid in self.entries or qid in self._spooling or self._stopping:
            return
        state = self.spool.locate(qid)
        if state is None or state == "deferred":
            return
        try:
            qf = await asyncio.to_thread(self.spool.load, qid, state)
        except FileNotFoundError:
            return
        except CorruptFile as exc:
            self.spool.quarantine(qid, state, str(exc))
            return
        if qid in self.entries:  # found by the scan meanwhile
            return
        self.entries[qid] = qf
        if state == "hold":
            log.info("%s: from=<%s>, size=%d, nrcpt=%d (queue hold)", qid, qf.envelope.sender, qf.size,
                     len(qf.envelope.recipients))
            return
        if (qf.done or qf.last) and not qf.attempts:  # the fast path's rest: back off, don't retry now
            incomplete = {i: qf.last.get(i, ("4.3.0", "delivery incomplete"))
                          for i in range(len(qf.envelope.recipients)) if not self._index_done(qf, i)}
            self._busy.add(qid)
            try:
                content = await self._load_content(qf)
            except (OSError, CorruptFile):
                self._busy.discard(qid)
                self._ready.put_nowait(qid)
                return
            self._spawn(self._finish_fast(qf, content, incomplete))
            return
        self._ready.put_nowait(qid)

    async def _pick_up_strays(self) -> None:
        """Files in active/ or hold/ that nobody handed to us (their process died first)."""
        for state in ("active", "hold"):
            try:
                names = await asyncio.to_thread(self.spool.ids, state)
            except OSError:
                continue
            for name in names:
                if QueueId(name) not in self.entries:
                    await self.pickup(name)

    # --- scheduling -----------------------------------------------------------------------------
    async def _scheduler(self) -> None:
        next_scan = self.clock.monotonic() + self.run_delay
        while True:
            try:
                if self.clock.monotonic() >= next_scan:
                    next_scan = self.clock.monotonic() + self.run_delay
                    await self._pick_up_strays()
                await self._schedule_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler error")
                await asyncio.sleep(1)

    async def _schedule_once(self) -> None:
        now = self.clock.time()
        while self._heap and self._heap[0][0] <= now:
            due, qid = heapq.heappop(self._heap)
            qf = self.entries.get(qid)
            if qf is None or qf.state != "deferred" or qf.next_attempt != due or qid in self._busy:
                continue
            await self._activate(qf)
        wait = self.run_delay
        if self._heap:
            wait = min(wait, max(0.0, self._heap[0][0] - now))
        self._wake.clear()
        await self._sleep_or_wake(wait)

    async def _sleep_or_wake(self, seconds: float) -> None:
        target = self.clock.monotonic() + seconds

        async def sleep() -> None:  # the task may start late: sleep until the deadline, not for a span
            await self.clock.sleep(target - self.clock.monotonic())

        sleeper = asyncio.ensure_future(sleep())
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def _activate(self, qf: QueueFile) -> None:
        try:
            await self.spool.move(qf.queue_id, qf.state, "active")
        except NotFound:
            self.entries.pop(qf.queue_id, None)
            return
        qf.state = "active"
        self._ready.put_nowait(qf.queue_id)

    def backoff(self, attempts: int) -> float:
        """Wait after the ``attempts``-th failed try: doubling from minimal to maximal backoff."""
        return float(min(self.max_backoff, self.min_backoff * (2 ** max(0, attempts - 1))))

    async def _worker(self) -> None:
        while True:
            qid = await self._ready.get()
            qf = self.entries.get(qid)
            if qf is None or qid in self._busy or qf.state != "active" or self._stopping:
                continue
            self._busy.add(qid)
            try:
                await self._process(qf)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: unexpected error in delivery; will retry", qid)
                await self._defer_after_error(qf)
            finally:
                self._busy.discard(qid)
                await self._apply_op(qf)

    async def _defer_after_error(self, qf: QueueFile) -> None:
        try:
            await self._defer(qf, self.clock.time())
        except Exception:  # the file cannot even be updated: retry from memory
            log.warning("%s: cannot update queue file; retrying in %ds", qf.queue_id, int(self.min_backoff))
            self._spawn(self._retry_later(qf.queue_id, self.min_backoff))

    async def _retry_later(self, qid: QueueId, delay: float) -> None:
        await self.clock.sleep(delay)
        if qid in self.entries:
            self._ready.put_nowait(qid)

    # --- one delivery attempt -------------------------------------------------------------------
    async def _load_content(self, qf: QueueFile) -> bytes:
        return await asyncio.to_thread(self.spool.read_content, qf)  # open/read can block on a busy disk

    async def _process(self, qf: QueueFile) -> None:
        try:
            content = await self._load_content(qf)
        except FileNotFoundError:
            self.entries.pop(qf.queue_id, None)
            return
        except CorruptFile as exc:
            self.spool.quarantine(qf.queue_id, qf.state, str(exc))
            self.entries.pop(qf.queue_id, None)
            return
        except OSError as exc:  # EIO, EMFILE …: not the file's fault, try again later
            log.warning("%s: cannot read queue file: %s", qf.queue_id, exc.strerror or exc)
            await self._defer_after_error(qf)
            return
        self._log_active(qf)
        env = qf.envelope
        try:
            plan = await self._plan(env, qf.done)
        except TemporaryFailure as exc:
            failed = {i: ("4.3.0", f"lookup failed: {exc}") for i in range(len(env.recipients))
                      if not self._index_done(qf, i)}
            await self._conclude(qf, content, failed)
            return
        groups = self._group(plan)
        incomplete: dict[int, tuple[str, str]] = {}
        last_group = len(groups) == 1
        sent: list[_Outcome] = []

        async def run(route: Route, items: list[tuple[int, str]]) -> None:
            outcomes = await self._deliver_group(route, items, env.sender, content, env)
            all_sent = all(o.result.outcome == "sent" for o in outcomes)
            if not (last_group and all_sent):
                await self.spool.append(qf.queue_id, qf.state, [self._record(o) for o in outcomes])
            for o in outcomes:
                qf.apply(self._record(o))
                self._log_result(qf, o)
                if o.result.outcome == "deferred":
                    incomplete[o.index] = (o.result.dsn, o.result.text)
                elif o.result.outcome == "sent":
                    sent.append(o)

        await asyncio.gather(*(run(route, items) for route, items in groups.items()))
        await self._notify_success(qf, content, sent)
        await self._conclude(qf, content, incomplete)

    async def _plan(self, env: Envelope, done: dict[tuple[int, str], FinalStatus]) -> list[tuple[int, str, Route]]:
        """(recipient index, final address, route) for everything not yet finished; a final
        address reached through two envelope recipients is delivered once (as Postfix's qmgr)."""
        flt = env.filter
        seen = {final.lower() for _, final in done}
        plan = []
        for i, rcpt in enumerate(env.recipients):
            for final, route in await self.router.route(rcpt.address, skip_filter=not flt, filter=flt):
                if final.lower() not in seen:
                    seen.add(final.lower())
                    plan.append((i, final, route))
        return plan

    def _group(self, plan: list[tuple[int, str, Route]]) -> dict[Route, list[tuple[int, str]]]:
        groups: dict[Route, list[tuple[int, str]]] = {}
        for i, final, route in plan:
            key = Route(route.transport, final) if route.transport == "virtual" else route
            groups.setdefault(key, []).append((i, final))
        return groups

    @contextlib.asynccontextmanager
    async def _slot(self, route: Route) -> AsyncIterator[None]:
        """A delivery slot for one destination; the semaphore lives only while it is in use,
        so per-mailbox limits do not accumulate one entry per address ever seen."""
        key = str(route)
        entry = self._sems.get(key)
        if entry is None:
            limit = self.limits.get(route.transport, self.dest_limit)
            entry = self._sems[key] = [asyncio.Semaphore(max(1, limit)), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._sems[key]

    async def _deliver_group(self, route: Route, items: list[tuple[int, str]], sender: str,
                             content: bytes, env: Envelope | None = None) -> list[_Outcome]:
        agent_route = Route("virtual", "") if route.transport == "virtual" else route
        dsn = _dsn_options(env, items) if env is not None and route.transport in ("smtp", "lmtp") else None
        async with self._slot(route):
            began = self.clock.time()
            finals = [f for _, f in items]
            try:
                if dsn is None:
                    results = await self.agents.deliver(agent_route, sender, finals, content)
                else:
                    results = await self.agents.deliver(agent_route, sender, finals, content, dsn=dsn)
            except Exception:
                log.exception("delivery agent %s failed", route.transport)
                results = [DeliveryResult(f, "deferred", "4.3.0", "delivery agent failure") for f in finals]
        finished = self.clock.time()
        return [_Outcome(i, f, route, r, began, finished) for (i, f), r in zip(items, results, strict=True)]

    async def _deliver_one(self, index: int, final: str, route: Route, sender: str, content: bytes) -> _Outcome:
        return (await self._deliver_group(Route(route.transport, final), [(index, final)], sender, content))[0]

    @staticmethod
    def _record(o: _Outcome) -> dict[str, Any]:
        r = o.result
        return {"k": "r", "i": o.index, "to": o.final, "s": r.outcome, "d": r.dsn, "t": r.text, "relay": r.relay}

    @staticmethod
    def _index_done(qf: QueueFile, index: int) -> bool:
        return any(i == index for i, _ in qf.done)

    # --- after an attempt -----------------------------------------------------------------------
    async def _conclude(self, qf: QueueFile, content: bytes, incomplete: dict[int, tuple[str, str]]) -> None:
        now = self.clock.time()
        notified = await self._notify_bounced(qf, content, now)
        if not incomplete:
            if notified:
                await self._remove(qf)
            else:  # only the failure notice is left to do
                await self._defer(qf, now)
            return
        lifetime = self.bounce_lifetime if not qf.envelope.sender else self.lifetime
        if now - qf.envelope.arrival >= lifetime:
            await self._expire(qf, content, incomplete, now)
            return
        await self._defer(qf, now)
        if self.warn_after > 0 and not qf.warned and now - qf.envelope.arrival >= self.warn_after:
            await self._delay_notice(qf, content, incomplete, now)

    async def _defer(self, qf: QueueFile, now: float) -> None:
        qf.attempts += 1
        qf.next_attempt = now + self.backoff(qf.attempts)
        await self.spool.append(qf.queue_id, qf.state, [{"k": "a", "n": qf.attempts, "next": qf.next_attempt}])
        if qf.state == "active":
            await self.spool.move(qf.queue_id, "active", "deferred")
            qf.state = "deferred"
        heapq.heappush(self._heap, (qf.next_attempt, qf.queue_id))
        self._wake.set()

    async def _remove(self, qf: QueueFile) -> None:
        await asyncio.to_thread(self.spool.remove, qf.queue_id, qf.state)  # unlink can block on a busy disk
        self.entries.pop(qf.queue_id, None)
        log.info("%s: removed", qf.queue_id)

    async def _expire(self, qf: QueueFile, content: bytes, incomplete: dict[int, tuple[str, str]],
                      now: float) -> None:
        log.info("%s: from=<%s>, status=expired, returned to sender", qf.queue_id, qf.envelope.sender)
        meter.count("pymailsrv_deliveries_total", "qmgr", "expired", n=len(incomplete))
        records = []
        for i, (dsn, text) in sorted(incomplete.items()):
            records.append({"k": "r", "i": i, "to": qf.envelope.recipients[i].address, "s": "bounced",
                            "d": dsn, "t": text})
        await self.spool.append(qf.queue_id, qf.state, records)
        for rec in records:
            qf.apply(rec)
        if await self._notify_bounced(qf, content, now):
            await self._remove(qf)
        else:
            await self._defer(qf, now)

    # --- notices --------------------------------------------------------------------------------
    def _reports(self, qf: QueueFile, keys: Sequence[tuple[int, str]]) -> list[RecipientReport]:
        out = []
        for i, final in keys:
            rcpt = qf.envelope.recipients[i]
            d = qf.done.get((i, final))
            dsn, text = (d.dsn, d.text) if d else qf.last.get(i, ("4.0.0", ""))
            original = rcpt.orcpt or (rcpt.original or rcpt.address)
            out.append(RecipientReport(final, original, dsn, text, d.relay if d else "none"))
        return out

    async def _notify_bounced(self, qf: QueueFile, content: bytes, now: float) -> bool:
        """The failure notice for bounced recipients not yet reported; False if a pipeline stage
        deferred it (it is tried again with the message's next attempt)."""
        keys = [k for k, d in qf.done.items() if d.status == "bounced" and k not in qf.notified]
        if not keys:
            return True
        wanted = [k for k in keys if wants_notice("failure", qf.envelope.recipients[k[0]].notify)]
        if wanted and not await self._send_notice("failure", qf, content, self._reports(qf, wanted), now):
            return False
        if qf.state in STATES and self.spool.exists(qf.queue_id, qf.state):
            await self.spool.append(qf.queue_id, qf.state, [{"k": "n", "keys": [list(k) for k in keys]}])
        qf.notified.update(keys)
        return True

    async def _notify_success(self, qf: QueueFile, content: bytes, outcomes: Sequence[_Outcome]) -> None:
        """RFC 3461 §4.1 NOTIFY=SUCCESS: one report for the recipients that asked for it."""
        env = qf.envelope
        wanted = [o for o in outcomes if o.result.outcome == "sent" and o.route.transport not in ("smtp", "lmtp")
                  and wants_notice("success", env.recipients[o.index].notify)]
        if not wanted or not env.sender:
            return
        reports = [RecipientReport(o.final, env.recipients[o.index].orcpt or env.recipients[o.index].original,
                                   o.result.dsn, o.result.text, o.result.relay) for o in wanted]
        await self._send_notice("success", qf, content, reports, self.clock.time())

    async def _delay_notice(self, qf: QueueFile, content: bytes, incomplete: dict[int, tuple[str, str]],
                            now: float) -> None:
        keys = [(i, qf.envelope.recipients[i].address) for i in sorted(incomplete)
                if wants_notice("delay", qf.envelope.recipients[i].notify)]
        await self.spool.append(qf.queue_id, qf.state, [{"k": "w"}])
        qf.warned = True
        if keys and qf.envelope.sender:  # never a delay notice about a notice
            reports = [RecipientReport(f, qf.envelope.recipients[i].orcpt or qf.envelope.recipients[i].original,
                                       *incomplete[i]) for i, f in keys]
            await self._send_notice("delay", qf, content, reports, now)

    async def _send_notice(self, kind: Kind, qf: QueueFile, content: bytes,
                           reports: list[RecipientReport], now: float) -> bool:
        """Build the notice, pass it through the pipeline, spool it. False if a stage deferred it;
        True when it was queued, or stopped on purpose (by a stage, or a notice nobody gets)."""
        env = qf.envelope
        to, pm_copy = env.sender, False
        if not env.sender:
            if env.attributes.get("notice") == "postmaster" or self.null_failures == "drop":
                bounce_log.info("%s: undeliverable notice dropped", qf.queue_id)
                return True
            to, pm_copy = self._postmaster_address(), True
        lifetime = self.bounce_lifetime if not env.sender else self.lifetime
        info = NoticeInfo(kind=kind, queue_id=qf.queue_id, sender=env.sender, to=to, hostname=self.hostname,
                          arrival=env.arrival, now=now, envid=env.dsn_envid, ret=env.dsn_ret,
                          retry_until=env.arrival + lifetime, postmaster_copy=pm_copy,
                          mail_name=self.settings.get_str("mail_name"))
        self._seq += 1
        msgid = f"{qf.queue_id}.{self._seq}@{self.hostname}"
        data = build_notice(info, reports, content, message_id=msgid)
        notice_env = Envelope(sender="", recipients=[Recipient(to)], client_name="localhost",
                              client_address="127.0.0.1", protocol="local",
                              attributes={"notice": "postmaster" if pm_copy else kind})
        what = {"failure": "non-delivery", "delay": "delay status", "success": "delivery status"}[kind]
        who = "postmaster" if pm_copy else "sender"
        new_id = self.spool.new_id()
        verdict, data = await self._through_pipeline(notice_env, data, new_id)
        if verdict.action != "accept":
            done = {"reject": "rejected", "defer": "deferred", "discard": "discarded"}[verdict.action]
            bounce_log.info("%s: %s %s notification %s by %s: %s", qf.queue_id, who, what, done,
                            verdict.stage or "the pipeline", one_line(verdict.reply() or verdict.reason or "discard"))
            return verdict.action != "defer"
        await self.enqueue(notice_env, data, queue_id=new_id)
        bounce_log.info("%s: %s %s notification: %s", qf.queue_id, who, what, new_id)
        return True

    async def submit_generated(self, sender: str, recipients: Sequence[str], content: bytes) -> QueueId | None:
        """Queue mail this server writes besides notices (vacation replies): through
        non_smtpd_pipeline, then spooled; the queue id, or None when a stage stopped it (logged)."""
        env = Envelope(sender=sender, recipients=[Recipient(r) for r in recipients], client_name="localhost",
                       client_address="127.0.0.1", protocol="local", attributes={"notice": "autoreply"})
        qid = self.spool.new_id()
        verdict, data = await self._through_pipeline(env, content, qid)
        if verdict.action != "accept":
            log.info("%s: generated message %s by %s: %s", qid, verdict.action, verdict.stage or "the pipeline",
                     one_line(verdict.reply() or verdict.reason or "discard"))
            return None
        return await self.enqueue(env, data, queue_id=qid)

    async def _through_pipeline(self, env: Envelope, data: bytes, queue_id: QueueId) -> tuple[Verdict, bytes]:
        """The message stages on a generated message (env changed in place); the verdict is
        accept, or what stopped it: reject, defer or discard."""
        if not self.pipeline.wants("message"):
            return ACCEPT, data
        session = LocalSession()
        session.state.sender = env.sender
        txn = Transaction(sender=env.sender, recipients=list(env.recipients), queue_id=queue_id)
        msg = Message(data)
        verdict = await self.pipeline.run("message", session, txn, msg=msg)
        if verdict.refused:
            return verdict, data
        if txn.discard or not txn.recipients:
            return Verdict("discard", stage=verdict.stage), data
        env.sender, env.recipients = txn.sender, txn.final_recipients()
        env.hold, env.filter = txn.hold, txn.filter
        return ACCEPT, msg.as_bytes()

    def _postmaster_address(self) -> str:
        pm = self.postmaster
        return pm if "@" in pm else f"{pm}@{self.hostname}"

    # --- logging --------------------------------------------------------------------------------
    def _log_active(self, qf: QueueFile) -> None:
        log.info("%s: from=<%s>, size=%d, nrcpt=%d (queue active)", qf.queue_id, qf.envelope.sender,
                 qf.size, len(qf.envelope.recipients))

    def _log_result(self, qf: QueueFile, o: _Outcome) -> None:
        r = o.result
        rcpt = qf.envelope.recipients[o.index]
        orig = rcpt.original or rcpt.address
        orig_part = f", orig_to=<{orig}>" if orig.lower() != o.final.lower() else ""
        arrival = qf.envelope.arrival
        a = 0.0
        b = max(0.0, o.started - arrival)
        d = max(0.0, o.finished - o.started)
        total = max(0.0, o.finished - arrival)
        status = {"sent": "sent", "deferred": "deferred", "bounced": "bounced"}[r.outcome]
        _count_result(o.route.transport, status, d, total)
        _AGENT_LOGS.get(o.route.transport, log).info(
            "%s: to=<%s>%s, relay=%s, delay=%s, delays=%s/%s/0/%s, dsn=%s, status=%s (%s)",
            qf.queue_id, o.final, orig_part, r.relay, fmt_delay(total), fmt_delay(a), fmt_delay(b),
            fmt_delay(d), r.dsn, status, r.text)

    # --- control (pymailsrv queue …) ------------------------------------------------------------
    async def control(self, command: str, arg: str = "") -> tuple[bool, str]:
        """flush [ID] | delete ID|ALL | hold ID | release ID | requeue ID | status → (ok, message)."""
        if command == "status":  # pymailsrv doctor: the queue manager answers
            return True, f"{len(self.entries)} message(s) in the queue"
        if command == "flush":
            targets = [QueueId(arg)] if arg else [q for q, f in self.entries.items() if f.state == "deferred"]
            n = 0
            for qid in targets:
                qf = self.entries.get(qid)
                if qf is None:
                    return False, f"{arg}: no such message"
                if qf.state == "deferred" and qid not in self._busy:
                    await self._activate(qf)
                    n += 1
            return True, f"{n} message(s) scheduled for delivery"
        if command not in ("delete", "hold", "release", "requeue"):
            return False, f"unknown command {command}"
        targets = list(self.entries) if arg == "ALL" else [QueueId(arg)]
        n = 0
        for qid in targets:
            qf = self.entries.get(qid)
            if qf is None:
                if arg != "ALL":
                    return False, f"{arg}: no such message"
                continue
            if qid in self._busy:
                self._ops[qid] = command
                n += 1
                continue
            n += await self._do_op(qf, command)
        verb = {"delete": "deleted", "hold": "placed on hold", "release": "released from hold",
                "requeue": "requeued"}[command]
        return True, f"{n} message(s) {verb}"

    async def _apply_op(self, qf: QueueFile) -> None:
        op = self._ops.pop(qf.queue_id, None)
        if op and qf.queue_id in self.entries:
            await self._do_op(qf, op)

    async def _do_op(self, qf: QueueFile, op: str) -> int:
        qid = qf.queue_id
        if op == "delete":
            await asyncio.to_thread(self.spool.remove, qid, qf.state)
            self.entries.pop(qid, None)
            log.info("%s: removed", qid)
            return 1
        if op == "hold" and qf.state != "hold":
            await self.spool.move(qid, qf.state, "hold", durable=True)
            qf.state = "hold"
            log.info("%s: placed on hold", qid)
            return 1
        if op == "release" and qf.state == "hold":
            log.info("%s: released from hold", qid)
            await self._activate(qf)
            return 1
        if op == "requeue" and qf.state != "hold":
            await self.spool.append(qid, qf.state, [{"k": "reset"}])
            qf.attempts, qf.next_attempt = 0, 0.0
            if qf.state == "deferred":
                await self._activate(qf)
            return 1
        return 0


def _count_result(transport: str, status: str, attempt: float, since_arrival: float) -> None:
    meter.count("pymailsrv_deliveries_total", transport, status)
    meter.observe("pymailsrv_delivery_duration_seconds", attempt, transport)
    if status != "deferred":
        meter.observe("pymailsrv_delivery_delay_seconds", since_arrival, transport)
