from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "queue"))

from delivery_peers import DnsResponder, SmtpPeer


@pytest.fixture
async def dns_server():
    d = await DnsResponder().start()
    yield d
    d.stop()


@pytest.fixture
async def peer_factory():
    peers = []

    async def make(**kw):
        p = await SmtpPeer(**kw).start()
        peers.append(p)
        return p

    yield make
    for p in peers:
        await p.stop()

from qfakes import clock, directory, harness, qsettings  # noqa: E402, F401  (fixtures)
