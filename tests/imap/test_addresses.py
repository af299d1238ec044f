"""Unit tests for the address-header parser behind ENVELOPE and SEARCH FROM/TO/CC/BCC."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymailsrv.imap import mime
from pymailsrv.imap.addresses import Address, parse


@pytest.mark.parametrize(("header", "want"), [
    (b"user@domain", [(None, None, b"user", b"domain")]),
    (b"user@domain (Real Name)", [(b"Real Name", None, b"user", b"domain")]),
    (b"Name <user@domain> (not a name)", [(b"Name", None, b"user", b"domain")]),
    (b"<user (c) @ (c) domain>", [(None, None, b"user", b"domain")]),
    (b'"Last, First" <a@b>, c@d', [(b"Last, First", None, b"a", b"b"), (None, None, b"c", b"d")]),
    (b'"a \\"q\\" b" <a@b>', [(b'a "q" b', None, b"a", b"b")]),
    (b"<@r1,@r2:u@h>", [(None, b"@r1,@r2", b"u", b"h")]),
    (b"=?utf-8?q?J=C3=B6rg?= <j@x>", [(b"=?utf-8?q?J=C3=B6rg?=", None, b"j", b"x")]),
    (b"g: a@b, (x (y)) c@d;, h:;", [(None, None, b"g", None), (None, None, b"a", b"b"),
                                    (b"x (y)", None, b"c", b"d"), (None, None, None, None),
                                    (None, None, b"h", None), (None, None, None, None)]),
    (b"g: (only a comment) ;", [(None, None, b"g", None), (None, None, None, None)]),
    (b"", []),
    (b"(unclosed", []),
])
def test_parse(header: bytes, want: list[tuple[bytes | None, ...]]) -> None:
    assert parse(header) == [Address(*w) for w in want]


def test_search_text_decodes_names_and_keeps_groups() -> None:
    text = mime.address_text(b"=?utf-8?q?J=C3=B6rg?= <j@x>, g: a@b, c@d;, h:;, <@r:u@h>")
    assert text == "Jörg <j@x>, g: a@b, c@d;, h:;, @r:u@h"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_never_raises(data: bytes) -> None:
    for addr in parse(data):
        assert addr.host is not None or addr.name is None
    mime.address_text(data)
