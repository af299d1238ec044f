"""The graphs (well-formed SVG with a legend of totals), the page, basic-auth parsing and the
terminal report, without a server."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pymailsrv.ops import page, report
from pymailsrv.ops.admin_auth import parse_basic
from pymailsrv.ops.graphs import line_graph
from pymailsrv.ops.rrd import ARCHIVE, RoundRobin

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_700_000_000


def test_graph_is_svg_with_a_line_and_a_total_per_series() -> None:
    points = {"received": [(T0 + i * 300, float(i % 3)) for i in range(288)], "sent": [(T0 + i * 300, 0.0)
                                                                                   for i in range(288)]}
    svg = ET.fromstring(line_graph('traffic <"day">', 300, points, graph_id="traffic-day"))
    assert svg.tag == f"{SVG}svg" and svg.get("id") == "traffic-day"
    lines = svg.findall(f"{SVG}polyline")
    assert [line.get("data-series") for line in lines] == ["received", "sent"]
    assert len(lines[0].get("points", "").split()) == 288
    legend = {t.get("data-series"): t.text for t in svg.findall(f"{SVG}text") if t.get("class") == "legend"}
    assert legend == {"received": f"received {sum(i % 3 for i in range(288))}", "sent": "sent 0"}
    assert svg.find(f"{SVG}title").text == 'traffic <"day">'  # type: ignore[union-attr]


def test_page_has_eight_graphs_totals_and_the_figures_of_the_moment(tmp_path: Path) -> None:
    rrd = RoundRobin(str(tmp_path / "stats.db"))
    rrd.add({"received": 4, "greylisted": 1}, T0)
    html = page.render(rrd, "mx.<example>.test", {"queue_deferred": 2, "sessions_imap": 3,
                                                  "queue_oldest": T0 - 600}, now=T0 + 1)
    assert html.count("<svg ") == 8 and "mx.&lt;example&gt;.test" in html
    assert '<td id="total-year-received">4</td>' in html and '<td id="total-day-greylisted">1</td>' in html
    assert '<td id="queue-deferred">2</td>' in html and '<td id="sessions-imap">3</td>' in html
    assert '<td id="queue-oldest">10 min</td>' in html
    assert "<script" not in html


@pytest.mark.parametrize(("header", "expected"), [
    ("Basic " + base64.b64encode(b"admin@example.test:pa:ss").decode(), ("admin@example.test", "pa:ss")),
    ("basic " + base64.b64encode("ädmin:pw".encode()).decode(), ("ädmin", "pw")),
    ("Basic " + base64.b64encode(b"nocolon").decode(), None),
    ("Basic " + base64.b64encode(b":pw").decode(), None),
    ("Basic !!notbase64", None),
    ("Basic " + base64.b64encode(b"\xff:\xfe").decode(), None),
    ("Bearer abc", None),
    ("Basic", None),
    ("Basic " + "A" * 2000, None),
])
def test_parse_basic(header: str, expected: tuple[str, str] | None) -> None:
    assert parse_basic(header) == expected


def test_report_prints_totals_sparkline_and_current(tmp_path: Path) -> None:
    rrd = RoundRobin(str(tmp_path / "stats.db"))
    rrd.add({"received": 5, "rejected": 2}, T0 - 7200, {"queue_active": 1, "sessions_smtp": 2})
    rrd.add({"received": 1}, T0)
    text = report.render(rrd, T0 + 10)
    received = next(line for line in text.splitlines() if line.startswith("received"))
    assert received.split()[1:5] == ["6"] * 4
    spark = received.split()[-1]
    assert len(spark) == report.SPARK_COLUMNS and spark[-1] != "·" and spark.count("█") == 1
    assert "queue: active 1, deferred 0, hold 0" in text and "sessions: smtp 2, imap 0, pop3 0" in text
    assert len(rrd.series("received", ARCHIVE["day"], T0)) == 288


def test_sparkline_of_nothing_is_blank() -> None:
    assert report.sparkline([0.0] * 288) == "·" * report.SPARK_COLUMNS


def test_stats_command_without_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pymailsrv.cli import main

    conf = tmp_path / "pymailsrv.conf"
    conf.write_text(f"data_directory = {tmp_path}\n")
    assert main(["--config", str(conf), "stats"]) == 1
    assert "stats.db: no statistics yet" in capsys.readouterr().err
    RoundRobin(str(tmp_path / "stats.db")).add({"sent": 2}, T0)
    assert main(["--config", str(conf), "stats"]) == 0
    assert "sent" in capsys.readouterr().out
