"""cleanup: Received (golden), Message-ID/Date, header splitting and header_checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pymailsrv.smtp import cleanup

GOLDEN = Path(__file__).parent / "golden"
TS = 1_700_000_000.0


def golden(name: str, actual: bytes, request: pytest.FixtureRequest) -> None:
    path = GOLDEN / name
    if request.config.getoption("--update-golden", default=False) or not path.exists():
        path.write_bytes(actual)
    expected = path.read_bytes()
    if actual != expected:
        path.with_suffix(path.suffix + ".failed").write_bytes(actual)
    assert actual == expected


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def test_received_plain(request: pytest.FixtureRequest) -> None:
    info = cleanup.TraceInfo(helo="client.test", client_name="unknown", client_address="192.0.2.7",
                             myhostname="mx.example.test", mail_name="pymailsrv", protocol="ESMTP",
                             recipient="bob@example.test", timestamp=TS)
    golden("received_plain.txt", cleanup.received_header(info), request)


def test_received_tls_auth(request: pytest.FixtureRequest) -> None:
    info = cleanup.TraceInfo(helo="[192.0.2.7]", client_name="unknown", client_address="192.0.2.7",
                             myhostname="mx.example.test", mail_name="pymailsrv", protocol="ESMTPSA",
                             tls_version="TLSv1.3", tls_cipher="TLS_AES_256_GCM_SHA384", tls_bits=256,
                             sasl_username="alice@example.test", timestamp=TS)
    golden("received_tls_auth.txt", cleanup.received_header(info), request)


def test_received_carries_no_client_control_character() -> None:
    """Issue 13: whatever the client chose (HELO, PTR name, login, recipient) reaches the header
    with its controls as "?", so it can never start a new header line."""
    info = cleanup.TraceInfo(helo='h\rFrom: "CEO" <ceo@example.test>', client_name="ptr\n.test",
                             client_address="192.0.2.7", myhostname="mx.example.test", mail_name="pymailsrv",
                             protocol="ESMTPA", sasl_username="a\r\nb\udcff", recipient="bob\x00@example.test",
                             timestamp=TS)
    header = cleanup.received_header(info)
    lines = header.split(b"\r\n")
    assert lines[0] == b'Received: from h?From: "CEO" <ceo@example.test> (ptr?.test [192.0.2.7])'
    assert b"(Authenticated sender: a??b?)" in lines[1] and b"for <bob?@example.test>" in lines[3]
    assert not any(c < 32 and c != 9 for c in header.replace(b"\r\n", b""))


@pytest.mark.parametrize("args,expected", [
    ((False, False, False, False), "SMTP"), ((True, False, False, False), "ESMTP"),
    ((True, True, False, False), "ESMTPS"), ((True, True, True, False), "ESMTPSA"),
    ((True, False, True, False), "ESMTPA"), ((True, True, True, True), "UTF8SMTPSA"),
    ((False, True, False, False), "SMTPS"),
])
def test_with_protocol(args: tuple[bool, bool, bool, bool], expected: str) -> None:
    assert cleanup.with_protocol(*args) == expected


def test_split_headers() -> None:
    msg = b"Subject: a\r\n b\r\nFrom: x@y\r\n\r\nbody\r\nX: not a header\r\n"
    headers, rest = cleanup.split_headers(msg)
    assert headers == [b"Subject: a\r\n b\r\n", b"From: x@y\r\n"]
    assert rest == b"\r\nbody\r\nX: not a header\r\n"
    assert cleanup.split_headers(b"no header line\r\n") == ([], b"no header line\r\n")
    assert cleanup.split_headers(b"A: 1\r\n") == ([b"A: 1\r\n"], b"")


def test_missing_headers() -> None:
    added = cleanup.missing_headers([b"Subject: x\r\n"], "mx.example.test", TS)
    assert re.fullmatch(rb"Message-ID: <20231114221320\.[0-9A-F]{12}@mx\.example\.test>\r\n", added[0])
    assert added[1] == b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    assert cleanup.missing_headers([b"message-id: <a@b>\r\n", b"DATE: x\r\n"], "h", TS) == []


class RegexpTable:
    """The shape of a regexp: table (first match wins) for these tests."""

    def __init__(self, rules: list[tuple[str, str]]) -> None:
        self.rules = [(re.compile(p, re.I | re.M), a) for p, a in rules]

    async def get(self, key: str) -> str | None:
        for pattern, action in self.rules:
            if pattern.search(key):
                return action
        return None


async def test_header_checks_actions() -> None:
    table = RegexpTable([
        (r"^X-Drop:", "IGNORE"), (r"^X-Warn:", "WARN looks odd"), (r"^X-Old:", "REPLACE X-New: yes"),
        (r"^X-Tag:", "PREPEND X-Tagged: 1"), (r"^X-Hold:", "HOLD"),
        (r"^Subject:.*multi\n\s+line", "WARN folded"),
    ])
    headers = [b"X-Drop: a\r\n", b"X-Warn: b\r\n", b"X-Old: c\r\n", b"X-Tag: d\r\n", b"X-Hold: e\r\n",
               b"Subject: multi\r\n line\r\n", b"X-Keep: f\r\n"]
    r = await cleanup.header_checks(headers, [table])
    assert r.headers == [b"X-Warn: b\r\n", b"X-New: yes\r\n", b"X-Tagged: 1\r\n", b"X-Tag: d\r\n",
                         b"X-Hold: e\r\n", b"Subject: multi\r\n line\r\n", b"X-Keep: f\r\n"]
    assert r.hold and not r.reject and not r.discard
    assert ("warn", "X-Warn: b", "looks odd") in r.events
    assert ("warn", "Subject: multi\n line", "folded") in r.events


async def test_header_checks_reject_and_discard() -> None:
    table = RegexpTable([(r"buy now", "REJECT no spam")])
    r = await cleanup.header_checks([b"Subject: buy now\r\n"], [table])
    assert r.reject == "no spam"
    r = await cleanup.header_checks([b"Subject: x\r\n"], [RegexpTable([(r"x", "DISCARD")])])
    assert r.discard
