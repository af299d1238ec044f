"""DMARC (RFC 7489): the policy record, identifier alignment and the policy to apply.

Implementation notes
- The organizational domain comes from the Public Suffix List as the ``publicsuffixlist``
  package ships it (RFC 7489 §3.2); the list is loaded once per process, on first use.
- The record is looked up at ``_dmarc.<From domain>``, then at the organizational domain (§6.6.3);
  a DNS failure is ``temperror`` and applies no policy: the caller decides to defer.
- ``pct`` (§6.6.4): a message not sampled gets the next weaker policy (reject → quarantine →
  none); the random draw is injectable for tests.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from functools import lru_cache
from typing import Literal

from publicsuffixlist import PublicSuffixList

from pymailsrv.errors import TemporaryFailure
from pymailsrv.senderauth.dnslookup import Lookup

DmarcResult = Literal["pass", "fail", "none", "temperror", "permerror"]
Policy = Literal["none", "quarantine", "reject"]
_WEAKER: dict[Policy, Policy] = {"reject": "quarantine", "quarantine": "none", "none": "none"}
_TAG = re.compile(r"^\s*([a-z]+)\s*=\s*(.*?)\s*$", re.IGNORECASE)
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}")


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


@dataclass(frozen=True, slots=True)
class Record:
    p: Policy
    sp: Policy
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"


def parse_record(text: str) -> Record | None:
    """A DMARC record, None when it is not one or is unusable (§6.3, §6.6.3: an invalid p=
    with a valid rua is treated as p=none; we have no rua, so: none)."""
    parts = [p for p in text.split(";") if p.strip()]
    if not parts or re.sub(r"\s", "", parts[0]).lower() != "v=dmarc1":
        return None
    tags: dict[str, str] = {}
    for part in parts[1:]:
        m = _TAG.match(part)
        if m:
            tags.setdefault(m.group(1).lower(), m.group(2))
    p = tags.get("p", "").lower()
    if p not in ("none", "quarantine", "reject"):
        return None
    sp = tags.get("sp", p).lower()
    if sp not in ("none", "quarantine", "reject"):
        sp = p
    pct_text = tags.get("pct", "100")
    pct = min(100, max(0, int(pct_text))) if pct_text.isdigit() else 100
    adkim = "s" if tags.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if tags.get("aspf", "r").lower() == "s" else "r"
    return Record(p, sp, pct, adkim, aspf)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DmarcOutcome:
    result: DmarcResult
    from_domain: str
    policy: Policy = "none"  # the policy the domain asks for this message (after sp= and pct=)
    requested: Policy = "none"  # p= or sp= before the pct sampling
    reason: str = ""

    @property
    def action(self) -> Policy:
        """What to do with the message: only a failing one gets a policy (§6.6.2)."""
        return self.policy if self.result == "fail" else "none"


def from_domain(values: Sequence[str]) -> str | None:
    """The RFC5322.From domain; None when there is not exactly one From with one address
    (RFC 7489 §6.6.1: such a message cannot be evaluated)."""
    if len(values) != 1:
        return None
    addresses = [a for _, a in getaddresses(values) if a]
    domains = {a.rpartition("@")[2].lower().rstrip(".") for a in addresses}
    if len(domains) != 1:
        return None
    domain = domains.pop()
    return domain if _HOSTNAME.fullmatch(domain) else None


def aligned(identifier: str, from_dom: str, mode: str) -> bool:
    identifier = identifier.lower().rstrip(".")
    if mode == "s":
        return identifier == from_dom
    return organizational_domain(identifier) == organizational_domain(from_dom)


async def evaluate(from_dom: str, spf_result: str, spf_domain: str, dkim_passes: Sequence[str],
                   lookup: Lookup, draw: Callable[[], float] = random.random) -> DmarcOutcome:
    """The DMARC result for a message from ``from_dom``: pass when SPF passed for an aligned
    MAIL FROM domain or a DKIM signature of an aligned domain passed (§3.1, §4.2)."""
    org = organizational_domain(from_dom)
    try:
        record, at = await _find_record(from_dom, org, lookup)
    except TemporaryFailure:
        return DmarcOutcome("temperror", from_dom, reason="DNS failure for the DMARC record")
    if record is None:
        return DmarcOutcome("none", from_dom, reason="no DMARC record")
    requested: Policy = record.sp if at != from_dom else record.p
    if spf_result == "pass" and aligned(spf_domain, from_dom, record.aspf):
        return DmarcOutcome("pass", from_dom, requested, requested, "SPF aligned")
    if any(aligned(d, from_dom, record.adkim) for d in dkim_passes):
        return DmarcOutcome("pass", from_dom, requested, requested, "DKIM aligned")
    policy = requested if record.pct >= 100 or draw() * 100 < record.pct else _WEAKER[requested]
    return DmarcOutcome("fail", from_dom, policy, requested, "neither SPF nor DKIM aligned and passing")


async def _find_record(domain: str, org: str, lookup: Lookup) -> tuple[Record | None, str]:
    for candidate in dict.fromkeys((domain, org)):
        records = [r for r in map(parse_record, await lookup(f"_dmarc.{candidate}", "TXT")) if r]
        if len(records) == 1:  # §6.6.3: more than one record is no record
            return records[0], candidate
    return None, domain
