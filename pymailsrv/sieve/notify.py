"""The ``mailto`` notification method (RFC 5436): URI checks and its capabilities.

Pure module.
"""

from __future__ import annotations

import re
import urllib.parse

_ADDR = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9.-]+$")


def mailto_recipients(uri: str) -> list[str] | None:
    """The ``to`` addresses of a mailto URI (RFC 6068), or None when it is not a valid one."""
    if not uri.lower().startswith("mailto:"):
        return None
    rest = uri[7:]
    to, _, query = rest.partition("?")
    out = [urllib.parse.unquote(a) for a in to.split(",") if a]
    for pair in query.split("&") if query else []:
        key, eq, value = pair.partition("=")
        if not eq:
            return None
        if key.lower() == "to":
            out += [urllib.parse.unquote(a) for a in value.split(",") if a]
    if not all(_ADDR.match(a) for a in out):
        return None
    return out  # may be empty ("mailto:"): valid, but nobody to notify


def valid_method(uri: str) -> bool:
    return mailto_recipients(uri) is not None


def mailto_capability(uri: str, capability: str) -> str | None:
    """RFC 5436 §2: ``online`` is ``maybe`` for mailto; other capabilities are unknown."""
    if not valid_method(uri):
        return None
    return "maybe" if capability.lower() == "online" else None
