"""LMTP transcripts (``transcripts/*.txt``) byte for byte over TCP: ``P:`` a parameter,
``F: user=bytes`` fill a mailbox first, ``C:`` a line the client sends, ``S:`` the line the
server must answer (``*`` matches anything, e.g. the transaction id)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.dovecot_services.conftest import fill
from tests.fakes import LineClient

TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.txt"))


def parse(path: Path) -> tuple[dict[str, str], dict[str, int], list[tuple[str, str]]]:
    params: dict[str, str] = {}
    fills: dict[str, int] = {}
    steps: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        kind, _, text = line.partition(":")
        text = text[1:] if text.startswith(" ") else text
        if kind == "P":
            name, _, value = text.partition("=")
            params[name.strip()] = value.strip()
        elif kind == "F":
            user, _, size = text.partition("=")
            fills[user.strip()] = int(size)
        else:
            steps.append((kind, text))
    return params, fills, steps


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
async def test_transcript(stack_factory: Any, path: Path) -> None:
    params, fills, steps = parse(path)
    stack = await stack_factory(**params)
    for user, size in fills.items():
        fill(stack.vmail, user, size)

    def run() -> None:
        c = LineClient(stack.lmtp_port)
        for kind, text in steps:
            if kind == "C":
                c.send(text.encode() + b"\r\n")
            else:
                c.expect(text)
        c.close()

    await asyncio.to_thread(run)
