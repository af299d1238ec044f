"""The next ARC set (RFC 8617 §5.1) for a message we checked and now forward, signed with
OpenSSL through cryptography like our DKIM signatures (dkimsign.py), not with dkimpy's
pure-Python RSA (two signatures a set, ~30 ms of CPU that would hold the queue manager's loop).

- ARC-Authentication-Results: ``i=N;`` and the results of our own Authentication-Results.
- ARC-Message-Signature: a DKIM signature (relaxed/relaxed) with ``i=N``, over the same header
  fields DKIM signing takes; never ARC fields or Authentication-Results (§4.1.2).
- ARC-Seal: ``i``, ``a``, ``t``, ``cv``, ``d``, ``s`` and ``b`` over every ARC set in instance
  order, AAR, AMS, AS each, the new one last with an empty b= (§5.1.1).
- ``cv`` is our arc= result: none for the first set, pass to continue a valid chain; a chain we
  found failed, or a later set without an arc= result of ours, is not sealed (returns []).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from pymailsrv.message.lines import to_crlf
from pymailsrv.senderauth.dkimsign import body_hash, relaxed_header, signature_value, signed_field, split
from pymailsrv.senderauth.keys import SigningKey

MAX_INSTANCE = 50  # RFC 8617 §4.2.1
ARC_FIELDS = (b"arc-authentication-results", b"arc-message-signature", b"arc-seal")
_INSTANCE = re.compile(rb"(?:^|;)\s*i\s*=\s*(\d+)", re.IGNORECASE)
_ARC_RESULT = re.compile(r"(?:^|;)\s*arc\s*=\s*(\w+)", re.IGNORECASE)


def our_results(fields: Sequence[tuple[bytes, bytes]], authserv_id: str) -> str | None:
    """The results (after the authserv-id) of our Authentication-Results field, unfolded."""
    for name, field in fields:
        if name != b"authentication-results":
            continue
        value = field.partition(b":")[2].decode("utf-8", "replace")
        text = " ".join(value.split())
        head, sep, rest = text.partition(";")
        if sep and head.strip().lower() == authserv_id.lower():
            return rest.strip()
    return None


def seal(content: bytes, key: SigningKey, authserv_id: str, names: Sequence[str],
         timestamp: int | None = None) -> list[bytes]:
    """The three fields of the next set, AAR first, each ending in CRLF; [] when not to seal."""
    fields, body = split(to_crlf(content))
    found = our_results(fields, authserv_id)
    if found is None or key.algorithm != "rsa-sha256":
        return []
    sets = _sets(fields)
    instance = max(sets, default=0) + 1
    m = _ARC_RESULT.search(found)
    cv = m.group(1).lower() if m else "none"
    if instance > MAX_INSTANCE or cv == "fail" or (instance == 1) != (cv == "none") or cv not in ("none", "pass"):
        return []
    when = int(time.time()) if timestamp is None else timestamp
    aar = f"ARC-Authentication-Results: i={instance}; {authserv_id};\r\n {found}\r\n".encode()
    signed = [n for n in names if n.encode() not in ARC_FIELDS and n != "authentication-results"]
    ams_value = signature_value(key, fields, body_hash(body), signed, when, name="ARC-Message-Signature",
                                first=f"i={instance}")
    ams = b"ARC-Message-Signature: " + ams_value.replace("\n", "\r\n").encode() + b"\r\n"
    covered = b""
    for i in sorted(sets):
        covered += b"".join(relaxed_header(sets[i][n]) for n in ARC_FIELDS if n in sets[i])
    covered += relaxed_header(aar) + relaxed_header(ams)
    tags = [f"i={instance}; a=rsa-sha256; t={when}; cv={cv};", f"d={key.domain}; s={key.selector};"]
    seal_value = signed_field(key, "ARC-Seal", tags, covered)
    return [aar, ams, b"ARC-Seal: " + seal_value.replace("\n", "\r\n").encode() + b"\r\n"]


def _sets(fields: Sequence[tuple[bytes, bytes]]) -> dict[int, dict[bytes, bytes]]:
    """The existing ARC fields by instance and name (the first of each, as a verifier takes it)."""
    sets: dict[int, dict[bytes, bytes]] = {}
    for name, field in fields:
        if name in ARC_FIELDS:
            m = _INSTANCE.search(field.partition(b":")[2])
            if m:
                sets.setdefault(int(m.group(1)), {}).setdefault(name, field)
    return sets
