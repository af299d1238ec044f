"""The sample maps shipped in config/ parse and answer as their comments say."""

from __future__ import annotations

from pathlib import Path

from pymailsrv.policy.tables import open_table

CONFIG = Path(__file__).parents[2] / "config"


async def test_sample_maps_parse() -> None:
    access = open_table(f"hash:{CONFIG}/access.sample")
    assert await access.get("x.bulk-mailer.example") is None  # the engine tries ".bulk-mailer.example"
    assert await access.get(".bulk-mailer.example") == "REJECT We do not accept mail from bulk senders"
    cidr = open_table(f"cidr:{CONFIG}/client_networks.cidr")
    assert await cidr.get("203.0.113.70") == "HOLD"
    assert await cidr.get("198.51.100.7") == "OK"
    assert await cidr.get("203.0.113.5") is None
    assert await cidr.get("10.0.0.1") is None
    regexp = open_table(f"regexp:{CONFIG}/header_checks.regexp")
    assert await regexp.get("Received: from host.example (unknown [192.0.2.1])") == \
        "WARN unknown client host.example"
    assert await regexp.get("subject: cheap VIAGRA") == "REJECT No thanks"
