"""What this process counts for the Prometheus metrics and the statistics page.

Components count at their seams (a connection accepted, a session ended with its command counts,
a login decided, a message queued, a delivery attempt logged) with ``count`` and ``observe``:
a dict update each, cheap enough for the SMTP hot path. Nothing here does I/O or knows about
Prometheus; ``pymailsrv.ops`` renders the figures.

Implementation notes:
- One ``Meter`` per process (``METER``), as there is one logging tree per process: the figures are
  facts about the process, and handing a meter through every constructor down to net/ and auth/
  would clutter the protocol code for nothing a test needs (tests read a fresh ``Meter``).
- Every metric is declared once in ``SPECS`` (name, kind, labels, help); counting an undeclared
  name is a programming error (KeyError in tests, not at a client).
- Worker processes send their ``snapshot()`` to the main process (workers/channel.py); the main
  process's ``Hub`` adds them up. A worker that ends leaves its counters and histograms behind
  (``retire``) so totals never go down across reloads and restarts of workers; its gauges go.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["counter", "gauge", "histogram"]
Labels = tuple[str, ...]

# Seconds: a local Maildir delivery takes milliseconds, a remote one up to minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    kind: Kind
    labels: Labels
    help: str
    buckets: tuple[float, ...] = ()


SPECS: dict[str, Spec] = {s.name: s for s in (
    Spec("pymailsrv_connections_total", "counter", ("protocol",),
         "Client connections accepted, by protocol (smtp, imap, pop3)."),
    Spec("pymailsrv_sessions", "gauge", ("protocol",), "Sessions in progress, by protocol."),
    Spec("pymailsrv_commands_total", "counter", ("protocol", "command"),
         "Commands received, by protocol and command name (unknown for what is none)."),
    Spec("pymailsrv_auth_total", "counter", ("service", "mechanism", "result"),
         "Logins decided, by service, mechanism (as the login log line's method: the SASL name; "
         "IMAP's LOGIN command counts as LOGIN, POP3's USER/PASS as USER) and result (success, "
         "failure, unavailable: throttled or the database down)."),
    Spec("pymailsrv_messages_received_total", "counter", ("origin",),
         "Messages accepted (250 after DATA), by listener kind (smtpd, submission, smtps, reinject)."),
    Spec("pymailsrv_deliveries_total", "counter", ("transport", "status"),
         "Delivery attempts per recipient, by transport and status (sent, deferred, bounced; "
         "expired: given up after maximal_queue_lifetime, transport qmgr)."),
    Spec("pymailsrv_delivery_duration_seconds", "histogram", ("transport",),
         "Time one delivery attempt took, by transport.", LATENCY_BUCKETS),
    Spec("pymailsrv_delivery_delay_seconds", "histogram", ("transport",),
         "Time from arrival to the final status (sent or bounced), by transport.", LATENCY_BUCKETS),
    Spec("pymailsrv_smtpd_rejects_total", "counter", ("stage", "reason", "action"),
         "SMTP commands refused, by stage (connect, helo, mail, rcpt, data, message), reason (the "
         "restriction or pipeline stage that decided; smtpd for the server's own limits) and action "
         "(reject 5xx, defer 4xx)."),
    Spec("pymailsrv_messages_filtered_total", "counter", ("verdict",),
         "Messages a content filter judged (spam, virus), for the statistics page; counted by the "
         "stages that find them."),
)}


class Meter:
    """Counters, gauges and histograms of one process, keyed by (name, label values)."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, Labels], float] = {}
        self.gauges: dict[tuple[str, Labels], float] = {}
        self.histograms: dict[tuple[str, Labels], list[float]] = {}  # bucket counts..., +Inf, sum
        self.changes = 0  # bumped on every update: nothing new to report when unchanged

    def count(self, name: str, labels: Labels = (), n: float = 1.0) -> None:
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0.0) + n
        self.changes += 1

    def gauge_add(self, name: str, labels: Labels = (), n: float = 1.0) -> None:
        key = (name, labels)
        self.gauges[key] = self.gauges.get(key, 0.0) + n
        self.changes += 1

    def observe(self, name: str, value: float, labels: Labels = ()) -> None:
        key = (name, labels)
        row = self.histograms.get(key)
        if row is None:
            row = self.histograms[key] = [0.0] * (len(SPECS[name].buckets) + 2)
        row[bisect.bisect_left(SPECS[name].buckets, value)] += 1  # le: a value on a bound counts in it
        row[-1] += value
        self.changes += 1

    def snapshot(self) -> Snapshot:
        return Snapshot(dict(self.counters), dict(self.gauges), {k: list(v) for k, v in self.histograms.items()})


@dataclass(slots=True)
class Snapshot:
    """The figures of one or more processes at one moment."""

    counters: dict[tuple[str, Labels], float] = field(default_factory=dict)
    gauges: dict[tuple[str, Labels], float] = field(default_factory=dict)
    histograms: dict[tuple[str, Labels], list[float]] = field(default_factory=dict)

    def add(self, other: Snapshot, *, gauges: bool = True) -> None:
        for key, value in other.counters.items():
            self.counters[key] = self.counters.get(key, 0.0) + value
        if gauges:
            for key, value in other.gauges.items():
                self.gauges[key] = self.gauges.get(key, 0.0) + value
        for key, row in other.histograms.items():
            mine = self.histograms.get(key)
            if mine is None or len(mine) != len(row):
                self.histograms[key] = list(row)
            else:
                for i, value in enumerate(row):
                    mine[i] += value

    def total(self, name: str, **match: str) -> float:
        """The sum of a counter over the label values that match (``total("x", action="reject")``)."""
        labels = SPECS[name].labels
        want = [(labels.index(k), v) for k, v in match.items()]
        return sum(value for (n, values), value in self.counters.items()
                   if n == name and all(values[i] == v for i, v in want))

    def to_json(self) -> dict[str, Any]:
        return {"c": _rows(self.counters), "g": _rows(self.gauges), "h": _rows(self.histograms)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Snapshot:
        """The inverse of ``to_json``; rows of unknown metrics (another version) are skipped."""
        snap = cls()
        for part, target in (("c", snap.counters), ("g", snap.gauges), ("h", snap.histograms)):
            for name, labels, value in raw.get(part, ()):
                if name in SPECS and isinstance(labels, list):
                    target[(str(name), tuple(str(x) for x in labels))] = value
        return snap


def _rows(table: Mapping[tuple[str, Labels], Any]) -> list[list[Any]]:
    return [[name, list(labels), value] for (name, labels), value in table.items()]


class Hub:
    """The main process's sum of its own Meter and the latest snapshot of every worker process."""

    def __init__(self, local: Meter) -> None:
        self.local = local
        self.live: dict[int, Snapshot] = {}  # worker slot -> its latest snapshot
        self.reported: dict[int, float] = {}  # worker slot -> when (monotonic) it last reported
        self.retired = Snapshot()  # counters and histograms of workers that ended

    def update(self, slot: int, snapshot: Snapshot, now: float = 0.0) -> None:
        self.live[slot] = snapshot
        self.reported[slot] = now

    def retire(self, slot: int) -> None:
        """A worker process ended: what it counted stays in the totals, its gauges go."""
        last = self.live.pop(slot, None)
        self.reported.pop(slot, None)
        if last is not None:
            self.retired.add(last, gauges=False)

    def total(self) -> Snapshot:
        out = Snapshot()
        out.add(self.local.snapshot())
        out.add(self.retired)
        for snap in self.live.values():
            out.add(snap)
        return out


METER = Meter()


def count(name: str, *labels: str, n: float = 1.0) -> None:
    """Count one event of ``name`` (declared in SPECS) in this process."""
    key = (name, labels)  # Meter.count inlined: this runs a few times per SMTP message
    counters = METER.counters
    counters[key] = counters.get(key, 0.0) + n
    METER.changes += 1


def gauge_add(name: str, *labels: str, n: float = 1.0) -> None:
    METER.gauge_add(name, labels, n)


def observe(name: str, value: float, *labels: str) -> None:
    METER.observe(name, value, labels)


def commands(protocol: str, counts: Iterable[tuple[str, int]]) -> None:
    """A session's command counts at its end, (name, how many) each: one update per name per
    session rather than one per command (SMTP keeps these counts for its disconnect line)."""
    counters = METER.counters
    for name, n in counts:
        key = ("pymailsrv_commands_total", (protocol, name))
        counters[key] = counters.get(key, 0.0) + n
    METER.changes += 1
