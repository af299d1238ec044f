"""Long dialogues as transcript files (STYLE.md rule 8): ``C:`` lines are sent (consecutive ones
in one write, so they pipeline; ``\\r\\n`` inside a line is sent as CRLF, for literals), ``S:``
lines are expected (``*`` is a wildcard), ``CLOSED`` expects the server to hang up. Each starts
after the greeting and the capabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import play_transcript
from tests.managesieve.conftest import Harness, RawClient

HERE = Path(__file__).parent / "transcripts"


@pytest.mark.parametrize("name", sorted(p.name for p in HERE.glob("*.txt")))
def test_transcript(sieve: Harness, name: str) -> None:
    c = RawClient(sieve.port)
    c.response()
    play_transcript(c, HERE / name)
