"""DKIM (RFC 6376, RFC 8463) signing and verification, ARC (RFC 8617) verification and sealing.

Implementation notes
- Signatures and ARC seals are made in dkimsign.py / arcsign.py (OpenSSL through cryptography;
  dkimpy's RSA is pure Python).
- dkimpy verifies DKIM and ARC chains; its DNS callback is synchronous, so the keys
  a message needs are fetched first over our async Lookup and dkimpy reads them from that answer
  set (no DNS on the event loop's thread, no blocking resolver).
- A key that could not be fetched (DNS failure) is ``temperror``, a missing or unusable key
  ``permerror``; a signature that does not verify is ``fail`` (RFC 8601 §2.7.1).
- rsa-sha1 signatures get ``policy`` (RFC 8301 §3.1), unverified; keys under 1024 bits fail
  (dkimpy's minimum, RFC 8301 §3.2).
- Signing: relaxed/relaxed, the headers of SIGNED_HEADERS that the message has, and From,
  Subject, Date and To once more (oversigned: a copy added in transit breaks the signature).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dkim

from pymailsrv.errors import TemporaryFailure
from pymailsrv.message.lines import header_end, to_crlf
from pymailsrv.senderauth import arcsign, dkimsign
from pymailsrv.senderauth.dnslookup import Lookup
from pymailsrv.senderauth.keys import SigningKey

DkimResult = Literal["pass", "fail", "neutral", "none", "temperror", "permerror", "policy"]
ArcResult = Literal["pass", "fail", "none"]

SIGNED_HEADERS = ("from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc", "mime-version",
                  "content-type", "content-transfer-encoding", "content-id", "content-description",
                  "resent-date", "resent-from", "resent-sender", "resent-to", "resent-cc", "resent-message-id",
                  "in-reply-to", "references", "list-id", "list-help", "list-unsubscribe", "list-subscribe",
                  "list-post", "list-owner", "list-archive", "list-unsubscribe-post", "autocrypt")
OVERSIGNED = ("from", "subject", "date", "to")
_TAG = re.compile(rb"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)", re.IGNORECASE)
_quiet = logging.getLogger("pymailsrv.senderauth.dkimpy")
_quiet.setLevel(logging.CRITICAL)  # dkimpy logs every failed signature as an error


@dataclass(frozen=True, slots=True)
class Signature:
    """One DKIM-Signature's outcome, as Authentication-Results reports it."""

    result: DkimResult
    domain: str  # d=
    selector: str  # s=
    algorithm: str  # a=
    b: str  # the first characters of b=, to tell two signatures of one domain apart (RFC 6008)
    reason: str = ""


def sign(content: bytes, keys: Sequence[SigningKey], timestamp: int | None = None) -> list[str]:
    """The DKIM-Signature values (without the field name, folded with "\\n") for ``content``,
    one per key, each computed on the message as it is (dual signatures do not cover each other):
    the fields of SIGNED_HEADERS the message has, then OVERSIGNED once more."""
    fields, _ = dkimsign.split(to_crlf(content))
    present = [name.decode("ascii", "replace") for name, _ in fields]
    names = [n for n in present if n in SIGNED_HEADERS] + list(OVERSIGNED)
    return dkimsign.sign(content, keys, names, timestamp)


def signature_tags(value: bytes) -> dict[str, str]:
    flat = re.sub(rb"\s+", b"", value)
    return {m.group(1).decode().lower(): m.group(2).decode("ascii", "replace") for m in _TAG.finditer(flat)}


class _Keys:
    """The DNS answers for the key records a message names, fetched ahead for dkimpy."""

    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}
        self.failed: set[str] = set()

    async def fetch(self, lookup: Lookup, names: Iterable[str]) -> None:
        for name in names:
            if name in self.records or name in self.failed:
                continue
            try:
                self.records[name] = "".join(await lookup(name, "TXT")).encode()
            except TemporaryFailure:
                self.failed.add(name)

    def dnsfunc(self, name: bytes | str, timeout: int = 5) -> bytes:
        key = (name.decode() if isinstance(name, bytes) else name).lower().rstrip(".")
        if key in self.failed:
            raise dkim.DnsTimeoutError(f"DNS failure for {key}")
        return self.records.get(key, b"")


def _key_name(tags: dict[str, str]) -> str:
    return f"{tags.get('s', '')}._domainkey.{tags.get('d', '')}".lower().rstrip(".")


def _field_values(headers: Sequence[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> list[bytes]:
    return [value for name, value in headers if name.lower() in names]


def _has_field(message: bytes, *names: bytes) -> bool:
    """A cheap look for a field before dkimpy parses the whole message."""
    end = header_end(message)
    head = b"\n" + (message if end < 0 else message[:end]).lower()
    return any(b"\n" + name + b":" in head for name in names)


async def verify(content: bytes, lookup: Lookup) -> list[Signature]:
    """Every DKIM-Signature of the message, topmost first (RFC 6376 §6)."""
    message = to_crlf(content)
    if not _has_field(message, b"dkim-signature"):
        return []
    verifier = dkim.DKIM(message, logger=_quiet)
    values = _field_values(verifier.headers, (b"dkim-signature",))
    tags = [signature_tags(v) for v in values]
    keys = _Keys()
    await keys.fetch(lookup, (_key_name(t) for t in tags if t.get("s") and t.get("d")))
    return [_verify_one(verifier, i, t, keys) for i, t in enumerate(tags)]


def _verify_one(verifier: Any, index: int, tags: dict[str, str], keys: _Keys) -> Signature:
    def outcome(result: DkimResult, reason: str = "") -> Signature:
        return Signature(result, tags.get("d", "").lower(), tags.get("s", ""), tags.get("a", ""),
                         tags.get("b", "")[:8], reason)

    if not (tags.get("d") and tags.get("s") and tags.get("b")):
        return outcome("permerror", "bad signature")
    if tags.get("a", "").lower() == "rsa-sha1":  # RFC 8301 §3.1: not used for verifying any more
        return outcome("policy", "rsa-sha1 is not accepted (RFC 8301)")
    name = _key_name(tags)
    if name in keys.failed:
        return outcome("temperror", "key lookup failed")
    if not keys.records.get(name):
        return outcome("permerror", "no key for signature")
    try:
        ok = verifier.verify(idx=index, dnsfunc=keys.dnsfunc)
    except dkim.DKIMException as exc:
        if str(exc).startswith("body hash mismatch"):  # the body changed in transit (RFC 6376 §6.1.3)
            return outcome("fail", "body hash mismatch")
        return outcome("permerror", str(exc)[:100])
    return outcome("pass") if ok else outcome("fail", "signature did not verify")


async def arc_verify(content: bytes, lookup: Lookup) -> tuple[ArcResult, str]:
    """The ARC chain's validation (RFC 8617 §5.2): pass, fail or none, with dkimpy's reason."""
    message = to_crlf(content)
    if not _has_field(message, b"arc-seal", b"arc-message-signature"):
        return "none", "no ARC sets"
    parsed = dkim.ARC(message, logger=_quiet)
    values = _field_values(parsed.headers, (b"arc-seal", b"arc-message-signature"))
    if not values:
        return "none", "no ARC sets"
    keys = _Keys()
    await keys.fetch(lookup, (_key_name(t) for t in map(signature_tags, values) if t.get("s") and t.get("d")))
    if keys.failed:
        return "fail", "key lookup failed"  # an ARC temperror is reported as fail (RFC 8617 §5.2)
    cv, _, reason = dkim.arc_verify(message, logger=_quiet, dnsfunc=keys.dnsfunc)
    text = cv.decode() if isinstance(cv, bytes) else "fail"
    return ("pass" if text == "pass" else "none" if text == "none" else "fail"), str(reason)


def arc_seal(content: bytes, key: SigningKey, authserv_id: str, timestamp: int | None = None) -> list[bytes]:
    """The next ARC set (ARC-Authentication-Results, ARC-Message-Signature, ARC-Seal, each with
    its CRLF) for a message that carries our Authentication-Results with an ``arc=`` result; an
    empty list when the chain is not to be continued (arcsign.py)."""
    fields, _ = dkimsign.split(to_crlf(content))
    present = [name.decode("ascii", "replace") for name, _ in fields]
    names = [n for n in present if n in SIGNED_HEADERS] + list(OVERSIGNED)
    return arcsign.seal(content, key, authserv_id, names, timestamp)
