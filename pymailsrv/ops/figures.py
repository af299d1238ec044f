"""The statistics page's series from the metrics (mailgraph's received, sent, bounced, rejected,
greylisted, spam and virus), and what is counted since the last update."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pymailsrv.meter import Snapshot

_SERIES: dict[str, Callable[[Snapshot], float]] = {
    "received": lambda s: s.total("pymailsrv_messages_received_total"),
    "sent": lambda s: s.total("pymailsrv_deliveries_total", status="sent"),
    "bounced": lambda s: (s.total("pymailsrv_deliveries_total", status="bounced")
                          + s.total("pymailsrv_deliveries_total", status="expired")),
    "rejected": lambda s: s.total("pymailsrv_smtpd_rejects_total", action="reject"),
    "greylisted": lambda s: s.total("pymailsrv_smtpd_rejects_total", reason="check_greylist"),
    "spam": lambda s: s.total("pymailsrv_messages_filtered_total", verdict="spam"),
    "virus": lambda s: s.total("pymailsrv_messages_filtered_total", verdict="virus"),
}


def series_totals(snapshot: Snapshot) -> dict[str, float]:
    return {name: get(snapshot) for name, get in _SERIES.items()}


def sessions(snapshot: Snapshot) -> dict[str, float]:
    """protocol -> sessions in progress."""
    out = {"smtp": 0.0, "imap": 0.0, "pop3": 0.0}
    for (name, labels), value in snapshot.gauges.items():
        if name == "pymailsrv_sessions":
            out[labels[0]] = out.get(labels[0], 0.0) + value
    return out


class Deltas:
    """What was counted since the last call, from totals that only grow (meter.Hub keeps what
    ended workers counted); a total that went down (a restart of the counting) starts again."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def take(self, totals: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for name, value in totals.items():
            before = self.last.get(name, 0.0)
            out[name] = value - before if value >= before else value
        self.last = dict(totals)
        return out
