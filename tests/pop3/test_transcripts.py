"""Long dialogues as transcript files (STYLE.md rule 8): ``C:`` lines are sent (consecutive ones
in one write, so they pipeline), ``S:`` lines are expected (``*`` is a wildcard), ``CLOSED``
expects the server to hang up. Every transcript runs on every store with two messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import play_transcript
from tests.pop3.conftest import USERS, RawClient

HERE = Path(__file__).parent / "transcripts"
MSGS = (b"From: a@example.test\nSubject: one\n\nHello\n.dot line\n",
        b"From: b@example.test\nSubject: two\n\nsecond\n")


@pytest.mark.parametrize("name", sorted(p.name for p in HERE.glob("*.txt")))
def test_transcript(pop3, name: str) -> None:  # type: ignore[no-untyped-def]
    for m in MSGS:
        pop3.deliver(USERS[0], m)
    c = RawClient(pop3.port)
    play_transcript(c, HERE / name)
