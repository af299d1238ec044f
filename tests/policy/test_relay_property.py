"""Property: whatever a client writes in RCPT TO, the relay check permits it only when the
address, once unquoted and without its (ignored) source route, is plainly
``local@one-of-our-domains`` (or a bare local name): no ``@``, ``%`` or ``!`` left in the local
part. And routing always terminates."""

from __future__ import annotations

import asyncio
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.policy.address import normalize, strip_source_route
from pymailsrv.policy.builtins import auth_destination
from pymailsrv.policy.dns import Resolver
from pymailsrv.policy.restrictions import RestrictionEngine

from .conftest import BASE

OURS = ["example.com", "mx.example.test", "localhost", "backup.example", "[127.0.0.1]"]
FRAGMENTS = ["user", "u.x", "@", "%", "!", ":", ",", ".", '"', "\\", "remote.example", "[192.0.2.9]",
             *OURS, "EXAMPLE.COM", " "]
PLAIN = re.compile(r"^[^@%!]*@(" + "|".join(re.escape(d) for d in OURS) + r")\.?$|^[^@%!]+$", re.I)


def _engine() -> RestrictionEngine:
    d = MemoryDirectory("/vmail")
    d.add_domain("example.com")
    d.add_domain("backup.example", backupmx=True)
    return RestrictionEngine(Settings(dict(BASE)), d, resolver=Resolver(["127.0.0.1:9"]))


ENGINE = _engine()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=9))
def test_permitted_only_when_plain(parts: list[str]) -> None:
    recipient = "".join(parts)
    permitted = asyncio.run(auth_destination(ENGINE, recipient))
    if permitted:
        # source routes are ignored and a trailing @ dropped, as Postfix does
        plain = strip_source_route(normalize(recipient)).rstrip("@")
        assert PLAIN.match(plain), recipient


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_route_terminates_on_any_text(text: str) -> None:
    asyncio.run(auth_destination(ENGINE, text))
