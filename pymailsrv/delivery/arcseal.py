"""ARC sealing (RFC 8617) of mail that pymailsrv forwards: a message that came in from outside
(it carries our own Authentication-Results, which the sender_auth stage wrote) and now leaves by
SMTP, to the address an alias points to or through a relayhost, gets the next ARC set on top, so
the final receiver can trust our SPF/DKIM/DMARC results after the forward broke SPF.

Implementation notes
- Sealed at each delivery attempt, on the queued bytes: the seal covers exactly what is sent.
- Only our authserv-id counts: forged ones were removed when the message came in.
- Mail without our header (our users' own mail, bounces) is passed on untouched; so is LMTP,
  which delivers to a final mailbox, not onwards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pymailsrv.delivery.agents import NextHopTransport
from pymailsrv.delivery.base import DeliveryResult, DsnOptions
from pymailsrv.log import get_logger
from pymailsrv.message.lines import header_end
from pymailsrv.senderauth.dkim import arc_seal
from pymailsrv.senderauth.keys import SigningKey

log = get_logger("smtp")


class ArcSealingTransport:
    """A NextHopTransport that seals forwarded mail before handing it to ``inner``."""

    def __init__(self, inner: NextHopTransport, key: SigningKey, authserv_id: str) -> None:
        self.inner = inner
        self.key = key
        self.authserv_id = authserv_id.lower()
        self._ours = re.compile(rb"^Authentication-Results:[ \t]*" + re.escape(self.authserv_id.encode())
                                + rb"[ \t]*;", re.IGNORECASE | re.MULTILINE)

    async def deliver_to(self, nexthop: str, sender: str, recipients: Sequence[str], content: bytes,
                         *, lmtp: bool = False, dsn: DsnOptions | None = None) -> list[DeliveryResult]:
        if not lmtp and self.verified_here(content):
            content = self.seal(content)
        return await self.inner.deliver_to(nexthop, sender, recipients, content, lmtp=lmtp, dsn=dsn)

    def verified_here(self, content: bytes) -> bool:
        end = header_end(content)
        return self._ours.search(content if end < 0 else content[:end]) is not None

    def seal(self, content: bytes) -> bytes:
        try:
            fields = arc_seal(content, self.key, self.authserv_id)
        except Exception as exc:  # a message we cannot seal is sent unsealed, not held back
            log.warning("warning: ARC sealing failed: %s", exc)
            return content
        first = content.find(b"\n")
        eol = b"\r\n" if first > 0 and content[first - 1] == 13 else b"\n"
        return b"".join(f.replace(b"\r\n", eol) for f in fields) + content
