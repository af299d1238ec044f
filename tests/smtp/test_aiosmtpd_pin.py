"""What SmtpSession takes from aiosmtpd (1.4.x), pinned: connection_made's STARTTLS transport swap
that drops plaintext buffered before the handshake, and the attributes it reads."""

from __future__ import annotations

import inspect

import aiosmtpd
from aiosmtpd.smtp import SMTP


def test_version_is_pinned() -> None:
    assert aiosmtpd.__version__.startswith("1.4.")
    assert tuple(int(x) for x in aiosmtpd.__version__.split(".")[:3]) >= (1, 4, 6)


def test_connection_made_still_swaps_transports_and_clears_plaintext() -> None:
    src = inspect.getsource(SMTP.connection_made)
    for needle in ("self._original_transport", "self._reader._transport = transport",
                   "self._writer._transport = transport", "self._reader._buffer.clear()",
                   "self._tls_protocol._extra", "self._handle_hooks.get(\"STARTTLS\")",
                   "self._handle_client()", "self._reset_timeout()"):
        assert needle in src, needle
