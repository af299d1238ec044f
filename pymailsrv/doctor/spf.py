"""Enough of SPF (RFC 7208) to say whether a domain's record authorizes this host's addresses:
the ip4, ip6, a, mx, include and all mechanisms and the redirect modifier, qualifiers, and the
10-lookup limit (§4.6.4). ``exists``, ``ptr`` and macros are not evaluated (the answer is then
None: "cannot tell"), which a doctor may admit and a verifier may not."""

from __future__ import annotations

import ipaddress

from pymailsrv.policy.dns import Resolver, Status

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
LOOKUP_LIMIT = 10  # RFC 7208 §4.6.4


def spf_records(txts: list[str]) -> list[str]:
    """The SPF records among a name's TXT strings (RFC 7208 §4.5: "v=spf1" then a space or end)."""
    return [t for t in txts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]


class _Unknown(Exception):
    """A mechanism this evaluator does not follow, or a DNS failure."""


class SpfView:
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.lookups = 0

    async def _records(self, name: str, rdtype: str) -> list[str]:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise _Unknown("more than 10 DNS lookups (permerror)")
        status, values = await self.resolver.query(name, rdtype)
        if status is Status.TEMPFAIL:
            raise _Unknown(f"DNS lookup of {name} {rdtype} failed")
        return values

    async def addresses(self, name: str) -> set[Address]:
        found: set[Address] = set()
        for rdtype in ("A", "AAAA"):
            found.update(ipaddress.ip_address(v) for v in await self._records(name, rdtype))
        return found

    async def evaluate(self, domain: str, address: Address) -> tuple[str | None, str]:
        """(result, why): pass, fail, softfail, neutral or none; None when it cannot tell."""
        self.lookups = -1  # the first TXT query does not count (RFC 7208 §4.6.4)
        try:
            return await self._check(domain, address, depth=0)
        except _Unknown as exc:
            return None, str(exc)

    async def _check(self, domain: str, address: Address, depth: int) -> tuple[str, str]:
        records = spf_records(await self._records(domain, "TXT"))
        if len(records) != 1:
            return ("none", f"{domain} has no SPF record") if not records else ("permerror", "several SPF records")
        redirect = ""
        for term in records[0].split()[1:]:
            if term.lower().startswith("redirect="):
                redirect = term.split("=", 1)[1]
                continue
            if "=" in term.split(":", 1)[0]:
                continue  # another modifier (exp=)
            qualifier = QUALIFIERS.get(term[0], "")
            mechanism = term[1:] if qualifier else term
            if await self._matches(mechanism, domain, address, depth):
                return qualifier or "pass", f"{term} in {domain}"
        if redirect:
            return await self._check(redirect, address, depth + 1)
        return "neutral", f"no mechanism of {domain} matches"

    async def _matches(self, mechanism: str, domain: str, address: Address, depth: int) -> bool:
        kind, _, arg = mechanism.partition(":")
        kind, _, prefix = kind.partition("/")  # a/24, mx/24
        kind = kind.lower()
        if "%" in arg:
            raise _Unknown(f"macro in {mechanism}: not evaluated")
        if kind == "all":
            return True
        if kind in ("ip4", "ip6"):
            try:
                return address in ipaddress.ip_network(arg, strict=False)
            except ValueError:
                raise _Unknown(f"bad {mechanism}") from None
        if kind in ("a", "mx"):
            arg, _, arg_prefix = arg.partition("/")  # a:host/24 (the IPv6 "//64" part is ignored)
            width = (arg_prefix or prefix).split("/")[0]
            names = [arg or domain] if kind == "a" else await self._exchanges(arg or domain)
            for name in names:
                for found in await self.addresses(name):
                    bits = width if width and found.version == address.version else str(found.max_prefixlen)
                    if address in ipaddress.ip_network(f"{found}/{bits}", strict=False):
                        return True
            return False
        if kind == "include":
            if depth >= 5:
                raise _Unknown("includes nested too deep")
            result, _ = await self._check(arg, address, depth + 1)
            return result == "pass"
        raise _Unknown(f"{mechanism}: not evaluated")

    async def _exchanges(self, domain: str) -> list[str]:
        return [v.split()[-1].rstrip(".") for v in await self._records(domain, "MX") if v.split()[-1] != "."]


def with_host(record: str, host: str) -> str:
    """``record`` with ``a:host`` inserted before its ``all`` (or redirect), to authorize this host."""
    terms = record.split()
    for i, term in enumerate(terms):
        if term.lower().lstrip("+-~?") == "all" or term.lower().startswith("redirect="):
            return " ".join([*terms[:i], f"a:{host}", *terms[i:]])
    return " ".join([*terms, f"a:{host}"])

