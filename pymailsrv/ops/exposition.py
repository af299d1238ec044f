"""The Prometheus text exposition of the metrics (prometheus-client renders it): what every
process counted (meter.Hub), the queue, and the worker processes, collected at each scrape."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from pymailsrv.meter import SPECS, Snapshot

# The classic text format's media type, which every Prometheus version reads (generate_latest
# writes that format for names like ours).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class WorkerState(Protocol):
    """What the metrics show of one worker process (workers.WorkerHealth)."""

    @property
    def slot(self) -> int: ...
    @property
    def ready(self) -> bool: ...
    @property
    def retired(self) -> bool: ...
    @property
    def restarts(self) -> int: ...
    @property
    def uptime(self) -> float: ...
    @property
    def report_age(self) -> float: ...


Census = Mapping[str, tuple[int, float]]  # queue state -> (messages, oldest arrival time or 0)


class MailCollector(Collector):
    def __init__(self, total: Callable[[], Snapshot], census: Callable[[], Census] | None = None,
                 workers: Callable[[], Sequence[WorkerState]] | None = None) -> None:
        self.total = total
        self.census = census
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        yield from _meter_families(self.total())
        if self.census is not None:
            yield from _queue_families(self.census(), time.time())
        if self.workers is not None:
            yield from _worker_families(self.workers())


def _meter_families(snap: Snapshot) -> Iterator[Metric]:
    for spec in SPECS.values():
        labels = list(spec.labels)
        family: Metric
        if spec.kind == "counter":
            counter = CounterMetricFamily(spec.name, spec.help, labels=labels)
            for (name, values), value in sorted(snap.counters.items()):
                if name == spec.name:
                    counter.add_metric(list(values), value)
            family = counter
        elif spec.kind == "gauge":
            gauge = GaugeMetricFamily(spec.name, spec.help, labels=labels)
            for (name, values), value in sorted(snap.gauges.items()):
                if name == spec.name:
                    gauge.add_metric(list(values), max(0.0, value))
            family = gauge
        else:
            hist = HistogramMetricFamily(spec.name, spec.help, labels=labels)
            for (name, values), row in sorted(snap.histograms.items()):
                if name == spec.name and len(row) == len(spec.buckets) + 2:
                    cumulative, buckets = 0.0, []
                    for bound, n in zip([*(repr(b) for b in spec.buckets), "+Inf"], row[:-1], strict=True):
                        cumulative += n
                        buckets.append((bound, cumulative))
                    hist.add_metric(list(values), buckets, row[-1])
            family = hist
        yield family


def _queue_families(census: Census, now: float) -> Iterator[Metric]:
    size = GaugeMetricFamily("pymailsrv_queue_messages", "Messages in the queue, by state (active, deferred, "
                             "hold).", labels=["state"])
    age = GaugeMetricFamily("pymailsrv_queue_oldest_age_seconds", "Age of the oldest message in the queue, by "
                            "state (0 when none).", labels=["state"])
    for state, (count, oldest) in sorted(census.items()):
        size.add_metric([state], count)
        age.add_metric([state], max(0.0, now - oldest) if oldest else 0.0)
    yield size
    yield age


def _worker_families(workers: Sequence[WorkerState]) -> Iterator[Metric]:
    up = GaugeMetricFamily("pymailsrv_worker_up", "1 for a worker process that serves, 0 for one starting, "
                           "restarting or retiring, by slot.", labels=["slot"])
    states = GaugeMetricFamily("pymailsrv_worker_processes", "Worker processes, by state (serving, starting, "
                               "retiring: replaced by a reload, finishing its sessions).", labels=["state"])
    restarts = CounterMetricFamily("pymailsrv_worker_restarts", "Times a worker process died and was started "
                                   "again, by slot.", labels=["slot"])
    uptime = GaugeMetricFamily("pymailsrv_worker_uptime_seconds", "Seconds since the worker process started, "
                               "by slot.", labels=["slot"])
    report_age = GaugeMetricFamily("pymailsrv_worker_report_age_seconds", "Seconds since the worker process last "
                                   "reported its counts (every second when they change, every 10 seconds anyway: "
                                   "more means its event loop is stuck), by slot.", labels=["slot"])
    counts = {"serving": 0, "starting": 0, "retiring": 0}
    for w in workers:
        slot = str(w.slot)
        up.add_metric([slot], 1.0 if w.ready else 0.0)
        restarts.add_metric([slot], w.restarts)
        uptime.add_metric([slot], w.uptime)
        if w.report_age >= 0:
            report_age.add_metric([slot], w.report_age)
        counts["retiring" if w.retired else "serving" if w.ready else "starting"] += 1
    for state, n in counts.items():
        states.add_metric([state], n)
    yield from (up, states, restarts, uptime, report_age)


def render(collector: MailCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
