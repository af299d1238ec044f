"""DSN bodies against golden files (STYLE.md rule 10). On a mismatch the output is written beside
the expected file as ``*.failed``; ``pytest --update-golden`` rewrites the expected files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pymailsrv.queue.bounce import NoticeInfo, RecipientReport, build_notice

GOLDEN = Path(__file__).parent / "golden"
ORIGINAL = (b"Received: from client.far.test (client.far.test [192.0.2.7])\r\n\tby mx.example.test\r\n"
            b"From: Sender <s@example.test>\r\nTo: x@remote.test\r\nSubject: quarterly report\r\n"
            b"Message-ID: <m1@example.test>\r\n\r\nHello,\r\n.. a dotted line\r\nbye\r\n")
REPORTS = [
    RecipientReport("gone@remote.test", "rfc822;Gone@remote.test", "5.1.1",
                    "host mx.remote.test[192.0.2.1]:25 said: 550 5.1.1 <gone@remote.test>: Recipient "
                    "address rejected: User unknown (in reply to RCPT TO command)", "mx.remote.test[192.0.2.1]:25"),
    RecipientReport("bob@example.test", "team@example.test", "5.2.2",
                    "maildir delivery failed: bob@example.test: mailbox full", "virtual"),
]
CASES = {
    "dsn_failure.txt": ("failure", "", REPORTS),
    "dsn_failure_hdrs.txt": ("failure", "HDRS", REPORTS[:1]),
    "dsn_delay.txt": ("delay", "", [RecipientReport("x@remote.test", "", "4.4.1",
                                                    "connect to mx.remote.test[192.0.2.1]:25: Connection timed out")]),
    "dsn_success.txt": ("success", "", [RecipientReport("alice@example.test", "", "2.0.0", "delivered to maildir",
                                                        "virtual")]),
}


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("name", sorted(CASES))
def test_dsn_golden(name, utc, request):
    kind, ret, reports = CASES[name]
    info = NoticeInfo(kind=kind, queue_id="060A24181E4000", sender="s@example.test", to="s@example.test",
                      hostname="mx.example.test", arrival=1_700_000_000.0, now=1_700_014_400.0,
                      envid="ENV-42", ret=ret, retry_until=1_700_432_000.0)
    got = build_notice(info, reports, ORIGINAL, message_id="20231114221320.060A24181E4000@mx.example.test")
    path = GOLDEN / name
    if request.config.getoption("--update-golden"):
        path.write_bytes(got)
    expected = path.read_bytes() if path.exists() else b""
    failed = path.with_name(path.name + ".failed")
    if got != expected:
        failed.write_bytes(got)
        pytest.fail(f"{name} differs from the golden file; see {failed} (pytest --update-golden rewrites it)")
    failed.unlink(missing_ok=True)
