"""Long dialogues as transcript files (STYLE.md rule 8): ``C:`` lines are sent (consecutive ones
in one write, so they pipeline; ``\\r\\n`` inside a line is sent as CRLF, for literals), ``S:``
lines are expected (``*`` is a wildcard), ``CLOSED`` expects the server to hang up. Each starts
after the greeting and the capabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.managesieve.conftest import Harness, RawClient

HERE = Path(__file__).parent / "transcripts"


@pytest.mark.parametrize("name", sorted(p.name for p in HERE.glob("*.txt")))
def test_transcript(sieve: Harness, name: str) -> None:
    c = RawClient(sieve.port)
    c.response()
    outgoing: list[str] = []
    try:
        for lineno, raw in enumerate((HERE / name).read_text().splitlines(), 1):
            if raw.startswith("#") or not raw.strip():
                continue
            if raw.startswith("C: "):
                outgoing.append(raw[3:].replace("\\r\\n", "\r\n") + "\r\n")
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
