"""Long dialogues as transcript files (STYLE.md rule 8): ``C:`` lines are sent (consecutive ones
in one write, so they pipeline), ``S:`` lines are expected (``*`` is a wildcard), ``CLOSED``
expects the server to hang up. Every transcript runs on every store with two messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pop3.conftest import USERS, RawClient

HERE = Path(__file__).parent / "transcripts"
MSGS = (b"From: a@example.test\nSubject: one\n\nHello\n.dot line\n",
        b"From: b@example.test\nSubject: two\n\nsecond\n")


@pytest.mark.parametrize("name", sorted(p.name for p in HERE.glob("*.txt")))
def test_transcript(pop3, name: str) -> None:  # type: ignore[no-untyped-def]
    for m in MSGS:
        pop3.deliver(USERS[0], m)
    c = RawClient(pop3.port)
    outgoing: list[str] = []
    try:
        for lineno, raw in enumerate((HERE / name).read_text().splitlines(), 1):
            if raw.startswith("#") or not raw.strip():
                continue
            if raw.startswith("C: "):
                outgoing.append(raw[3:] + "\r\n")
                continue
            if outgoing:
                c.send("".join(outgoing))
                outgoing.clear()
            if raw == "CLOSED":
                assert c.closed(), f"{name}:{lineno}: connection still open"
            elif raw.startswith("S:"):
                c.expect(raw[3:])
            else:
                raise AssertionError(f"{name}:{lineno}: bad transcript line {raw!r}")
    finally:
        c.close()
