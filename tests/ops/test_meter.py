"""meter: counting, snapshots over the worker channel's JSON, the main process's sums across
worker generations, and the text exposition prometheus-client renders from them."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from pymailsrv.meter import LATENCY_BUCKETS, SPECS, Hub, Meter, Snapshot
from pymailsrv.ops.exposition import MailCollector, render
from pymailsrv.workers import WorkerHealth


def _meter(received: int = 0, sessions: int = 0) -> Meter:
    m = Meter()
    for _ in range(received):
        m.count("pymailsrv_messages_received_total", ("smtpd",))
    if sessions:
        m.gauge_add("pymailsrv_sessions", ("smtp",), sessions)
    return m


def test_counts_gauges_and_histograms() -> None:
    m = Meter()
    m.count("pymailsrv_commands_total", ("smtp", "mail"), 3)
    m.gauge_add("pymailsrv_sessions", ("imap",))
    m.gauge_add("pymailsrv_sessions", ("imap",), -1)
    for value in (0.001, 0.01, 0.02, 1000.0):
        m.observe("pymailsrv_delivery_duration_seconds", value, ("virtual",))
    assert m.counters == {("pymailsrv_commands_total", ("smtp", "mail")): 3}
    assert m.gauges == {("pymailsrv_sessions", ("imap",)): 0}
    row = m.histograms[("pymailsrv_delivery_duration_seconds", ("virtual",))]
    assert len(row) == len(LATENCY_BUCKETS) + 2
    assert row[0] == 1 and row[1] == 1 and row[2] == 1  # le 0.005, le 0.01 (a bound counts in it), le 0.025
    assert row[-2] == 1 and row[-1] == pytest.approx(1000.031)  # +Inf, sum
    assert m.changes == 7


def test_snapshot_json_round_trip_skips_unknown_metrics() -> None:
    m = _meter(received=2, sessions=1)
    m.observe("pymailsrv_delivery_delay_seconds", 0.3, ("smtp",))
    raw = json.loads(json.dumps(m.snapshot().to_json()))
    raw["c"].append(["pymailsrv_from_a_newer_version_total", ["x"], 1])
    back = Snapshot.from_json(raw)
    assert back.counters == m.counters and back.gauges == m.gauges and back.histograms == m.histograms


def test_hub_adds_workers_and_keeps_what_ended_workers_counted() -> None:
    local = _meter(received=1)
    hub = Hub(local)
    hub.update(1, _meter(received=2, sessions=3).snapshot())
    hub.update(2, _meter(received=5, sessions=1).snapshot())
    total = hub.total()
    assert total.total("pymailsrv_messages_received_total") == 8
    assert total.gauges[("pymailsrv_sessions", ("smtp",))] == 4
    hub.update(1, _meter(received=4, sessions=2).snapshot())  # reports are cumulative: the latest counts
    hub.retire(2)  # a reload retired worker 2: its counters stay, its sessions are gone
    hub.update(3, _meter(received=1).snapshot())  # its successor
    total = hub.total()
    assert total.total("pymailsrv_messages_received_total") == 1 + 4 + 5 + 1
    assert total.gauges[("pymailsrv_sessions", ("smtp",))] == 2
    hub.retire(7)  # a worker that never reported
    assert hub.total().total("pymailsrv_messages_received_total") == 11


def test_total_matches_labels() -> None:
    m = Meter()
    m.count("pymailsrv_smtpd_rejects_total", ("rcpt", "check_greylist", "defer"))
    m.count("pymailsrv_smtpd_rejects_total", ("rcpt", "reject_unauth_destination", "reject"), 2)
    snap = m.snapshot()
    assert snap.total("pymailsrv_smtpd_rejects_total") == 3
    assert snap.total("pymailsrv_smtpd_rejects_total", action="reject") == 2
    assert snap.total("pymailsrv_smtpd_rejects_total", reason="check_greylist") == 1


def test_exposition_has_every_declared_metric_with_help() -> None:
    m = _meter(received=2)
    m.observe("pymailsrv_delivery_duration_seconds", 0.02, ("virtual",))
    text = render(MailCollector(Hub(m).total, census=lambda: {"active": (1, 0.0), "deferred": (2, 1.0)})).decode()
    for spec in SPECS.values():
        assert f"# HELP {spec.name}" in text
    assert 'pymailsrv_messages_received_total{origin="smtpd"} 2.0' in text
    assert 'pymailsrv_delivery_duration_seconds_bucket{le="0.025",transport="virtual"} 1.0' in text
    assert 'pymailsrv_delivery_duration_seconds_bucket{le="0.01",transport="virtual"} 0.0' in text
    assert 'pymailsrv_delivery_duration_seconds_count{transport="virtual"} 1.0' in text
    assert 'pymailsrv_queue_messages{state="deferred"} 2.0' in text
    assert 'pymailsrv_queue_oldest_age_seconds{state="active"} 0.0' in text


def test_label_values_are_escaped_in_the_exposition() -> None:
    m = Meter()
    m.count("pymailsrv_smtpd_rejects_total", ("rcpt", 'python:odd"stage\n', "reject"))
    text = render(MailCollector(Hub(m).total)).decode()
    assert 'reason="python:odd\\"stage\\n"' in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) is not installed")
def test_promtool_finds_nothing_to_lint() -> None:
    """Prometheus's own checker (promtool check metrics: format and naming conventions) on an
    exposition with every kind of family, the queue and the worker processes."""
    m = _meter(received=3, sessions=2)
    m.count("pymailsrv_auth_total", ("imap", "PLAIN", "success"))
    m.observe("pymailsrv_delivery_duration_seconds", 0.2, ("smtp",))
    workers = [WorkerHealth(1, True, False, 0, 12.5, 0.4), WorkerHealth(2, False, True, 3, 80.0, -1.0)]
    body = render(MailCollector(Hub(m).total, census=lambda: {"active": (1, 1.0), "deferred": (0, 0.0)},
                                workers=lambda: workers))
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
