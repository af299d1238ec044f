"""The DNS seam of sender authentication: one async function that answers one question.

``Lookup(name, rdtype)`` returns the records as text (TXT strings joined, others in presentation
form), an empty list for NXDOMAIN or no data, and raises ``TemporaryFailure`` for a timeout,
SERVFAIL or refusal: a DNS failure must become ``temperror`` (RFC 7208 §2.6.6, RFC 7489 §6.6.3),
never a silent pass or a permanent reject.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Lookup = Callable[[str, str], Awaitable[list[str]]]


class CountingLookup:
    """A Lookup that remembers every answer (for one message): SPF, DKIM, DMARC and ARC ask some
    names twice (the From domain's DMARC record, the same selector twice), DNS is asked once."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._answers: dict[tuple[str, str], list[str]] = {}

    async def __call__(self, name: str, rdtype: str) -> list[str]:
        key = (name.lower().rstrip("."), rdtype)
        if key not in self._answers:
            self._answers[key] = await self._lookup(key[0], rdtype)
        return self._answers[key]
