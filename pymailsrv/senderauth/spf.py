"""SPF (RFC 7208): ``check_host()`` over an injected async DNS lookup.

Implementation notes
- Our own evaluator rather than pyspf: pyspf is synchronous (it would block the event loop for
  every DNS round trip) and takes its resolver from module globals, so neither the loopback DNS
  of the tests nor ``dns_nameservers`` could reach it without patching. RFC 7208 is small.
- Limits (RFC 7208 §4.6.4): at most 10 terms that cause DNS queries (include, a, mx, ptr, exists,
  redirect) per evaluation including nested ones, at most 10 MX and 10 PTR names per term, at
  most 2 "void" lookups (no data / NXDOMAIN); exceeding any is ``permerror``.
- A DNS failure anywhere is ``temperror`` (§2.6.6), never a pass or a fail.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

from pymailsrv.errors import TemporaryFailure
from pymailsrv.senderauth.dnslookup import Lookup

Result = Literal["pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"]
QUALIFIERS: dict[str, Result] = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MAX_DNS_TERMS = 10  # RFC 7208 §4.6.4
MAX_VOID = 2
MAX_NAMES = 10

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_TERM = re.compile(r"^([-+?~]?)([a-z][a-z0-9_.-]*)(?:([:/=])(.*))?$", re.IGNORECASE)
_MACRO = re.compile(r"%(?:\{([slodiphcrtv])(\d*)(r?)([-.+,/_=]*)\}|(.))", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: Result
    domain: str  # the domain checked (the MAIL FROM domain or the HELO name)
    reason: str = ""  # for the log and the Authentication-Results comment
    lookups: int = 0


class PermError(Exception):
    pass


class TempError(Exception):
    pass


@dataclass
class _Limits:
    terms: int = 0
    void: int = 0

    def dns_term(self) -> None:
        self.terms += 1
        if self.terms > MAX_DNS_TERMS:
            raise PermError("too many DNS lookups")


@dataclass
class _Request:
    ip: IP
    sender: str  # local@domain (postmaster@helo when the MAIL FROM is empty)
    helo: str
    lookup: Lookup
    limits: _Limits = field(default_factory=_Limits)

    async def query(self, name: str, rdtype: str) -> list[str]:
        try:
            answer = await self.lookup(name, rdtype)
        except TemporaryFailure as exc:
            raise TempError(f"DNS {rdtype} {name}: {exc}") from None
        if not answer:
            self.limits.void += 1
            if self.limits.void > MAX_VOID:
                raise PermError("too many void DNS lookups")
        return answer


async def check_host(ip: str, sender: str, helo: str, lookup: Lookup, *, domain: str | None = None) -> SpfResult:
    """The SPF result for ``ip`` sending as ``sender`` (MAIL FROM; "" for the null sender, then
    postmaster@helo, RFC 7208 §2.4); ``domain`` checks another identity (the HELO name, §2.3)."""
    local, _, sender_domain = sender.rpartition("@") if sender else ("postmaster", "", helo)
    target = (domain or sender_domain).rstrip(".").lower()
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return SpfResult("none", target, "no client address")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if not _valid_domain(target):
        return SpfResult("none", target, "not a domain name")  # §4.3
    req = _Request(address, f"{local or 'postmaster'}@{sender_domain or target}", helo, lookup)
    try:
        result, reason = await _check(req, target, 0)
    except PermError as exc:
        result, reason = "permerror", str(exc)
    except TempError as exc:
        result, reason = "temperror", str(exc)
    return SpfResult(result, target, reason, req.limits.terms)


def _valid_domain(name: str) -> bool:
    labels = name.split(".")
    return len(labels) > 1 and all(0 < len(x) <= 63 for x in labels) and len(name) <= 253


async def _record(req: _Request, domain: str) -> str | None:
    """The one v=spf1 record of ``domain``; None without one (§4.5)."""
    try:
        answer = await req.lookup(domain, "TXT")
    except TemporaryFailure as exc:
        raise TempError(f"DNS TXT {domain}: {exc}") from None
    records = [r for r in answer if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
    if len(records) > 1:
        raise PermError(f"{domain}: more than one SPF record")
    return records[0] if records else None


async def _check(req: _Request, domain: str, depth: int) -> tuple[Result, str]:
    if depth > MAX_DNS_TERMS:
        raise PermError("include loop")
    record = await _record(req, domain)
    if record is None:
        return "none", f"{domain}: no SPF record"
    redirect: str | None = None
    explanation = False
    for term in record.split()[1:]:
        m = _TERM.match(term)
        if not m:
            raise PermError(f"{domain}: bad term {term!r}")
        qualifier, name, sep, arg = m.group(1), m.group(2).lower(), m.group(3) or "", m.group(4)
        if sep == "=":  # a modifier (§6)
            if qualifier:
                raise PermError(f"{domain}: bad term {term!r}")
            if name == "redirect":
                if redirect is not None:
                    raise PermError(f"{domain}: two redirect modifiers")
                redirect = arg or ""
            elif name == "exp":
                if explanation:
                    raise PermError(f"{domain}: two exp modifiers")
                explanation = True
            continue  # unknown modifiers are ignored (§6)
        if name not in _MECHANISMS:
            raise PermError(f"{domain}: unknown mechanism {name!r}")
        if await _matches(req, domain, name, sep, arg, depth):
            result = QUALIFIERS[qualifier or "+"]
            return result, f"{domain}: matched {term}"
    if redirect is not None:  # §6.1: only when no mechanism matched
        req.limits.dns_term()
        target = _domain_spec(req, redirect, domain)
        result, reason = await _check(req, target, depth + 1)
        if result == "none":
            raise PermError(f"redirect to {target}: no SPF record")
        return result, reason
    return "neutral", f"{domain}: no mechanism matched"  # §4.7


async def _matches(req: _Request, domain: str, name: str, sep: str, arg: str | None, depth: int) -> bool:
    if name == "all":
        if sep:
            raise PermError(f"{domain}: bad all")
        return True
    if name in ("ip4", "ip6"):
        return _ip_matches(req.ip, name, arg or "")
    req.limits.dns_term()
    if name == "include":
        if sep != ":" or not arg:
            raise PermError(f"{domain}: include without a domain")
        result, _ = await _check(req, _domain_spec(req, arg, domain), depth + 1)
        if result == "temperror":
            raise TempError(f"include:{arg}: temperror")
        if result in ("permerror", "none"):
            raise PermError(f"include:{arg}: {result}")
        return result == "pass"  # §5.2
    if name == "exists":
        if sep != ":" or not arg:
            raise PermError(f"{domain}: exists without a domain")
        return bool(await req.query(_domain_spec(req, arg, domain), "A"))
    spec, v4len, v6len = _dual_cidr(arg if sep else None, sep)
    target = _domain_spec(req, spec, domain) if spec else domain
    if name == "a":
        return await _a_matches(req, target, v4len, v6len)
    if name == "mx":
        hosts = [r.split()[-1].rstrip(".") for r in await req.query(target, "MX")]
        if len(hosts) > MAX_NAMES:
            raise PermError(f"{target}: more than {MAX_NAMES} MX records")
        for host in hosts:
            if await _a_matches(req, host, v4len, v6len, void_counts=False):
                return True
        return False
    return await _ptr_matches(req, target)


async def _a_matches(req: _Request, host: str, v4len: int, v6len: int, *, void_counts: bool = True) -> bool:
    rdtype, prefix = ("A", v4len) if req.ip.version == 4 else ("AAAA", v6len)
    if void_counts:
        addresses = await req.query(host, rdtype)
    else:
        try:
            addresses = await req.lookup(host, rdtype)
        except TemporaryFailure as exc:
            raise TempError(f"DNS {rdtype} {host}: {exc}") from None
    net = ipaddress.ip_network(f"{req.ip}/{prefix}", strict=False)
    return any(ipaddress.ip_address(a) in net for a in addresses)


async def _ptr_matches(req: _Request, target: str) -> bool:
    """§5.5: validated reverse names that are ``target`` or end in ``.target`` (discouraged, but
    still in records)."""
    try:
        names = await req.lookup(req.ip.reverse_pointer, "PTR")
    except TemporaryFailure:
        return False  # §5.5: a failed PTR lookup is simply no match
    for name in names[:MAX_NAMES]:
        name = name.rstrip(".").lower()
        if not (name == target or name.endswith("." + target)):
            continue
        try:
            if await _a_matches(req, name, 32 if req.ip.version == 4 else 128, 128, void_counts=False):
                return True
        except TempError:
            continue
    return False


def _ip_matches(ip: IP, name: str, arg: str) -> bool:
    try:
        net = ipaddress.ip_network(arg, strict=False)
    except ValueError:
        raise PermError(f"bad {name}:{arg}") from None
    if (name == "ip4") != (net.version == 4):
        raise PermError(f"bad {name}:{arg}")
    return ip.version == net.version and ip in net


def _dual_cidr(arg: str | None, sep: str) -> tuple[str, int, int]:
    """``domain/24//64``, ``/24``, ``//64`` → (domain, ipv4 prefix, ipv6 prefix) (§5.6)."""
    text = ("/" + arg) if sep == "/" and arg is not None else (arg or "")
    spec, v4, v6 = text, "32", "128"
    if "//" in text:
        spec, _, v6 = text.partition("//")
    if "/" in spec:
        spec, _, v4 = spec.partition("/")
    if not (v4.isdigit() and v6.isdigit()) or int(v4) > 32 or int(v6) > 128 or (sep == ":" and not spec):
        raise PermError(f"bad CIDR length in {text!r}")
    return spec, int(v4), int(v6)


def _domain_spec(req: _Request, spec: str, domain: str) -> str:
    name = expand(spec, req, domain).rstrip(".")
    while len(name) > 253 and "." in name:  # §7.3: drop labels from the left
        name = name.partition(".")[2]
    if not name or "." not in name:
        raise PermError(f"bad domain-spec {spec!r}")
    return name.lower()


def expand(spec: str, req: _Request, domain: str) -> str:
    """Macro expansion (RFC 7208 §7)."""
    out: list[str] = []
    pos = 0
    for m in _MACRO.finditer(spec):
        out.append(spec[pos:m.start()])
        pos = m.end()
        if m.group(5) is not None:
            literal = {"%": "%", "_": " ", "-": "%20"}.get(m.group(5))
            if literal is None:
                raise PermError(f"bad macro in {spec!r}")
            out.append(literal)
            continue
        letter, digits, reverse, delims = m.group(1).lower(), m.group(2), m.group(3), m.group(4) or "."
        value = _macro_value(letter, req, domain)
        parts = re.split("[" + re.escape(delims) + "]", value)
        if reverse:
            parts.reverse()
        if digits:
            if int(digits) == 0:
                raise PermError(f"bad macro in {spec!r}")
            parts = parts[-int(digits):]
        out.append(".".join(parts))
    rest = spec[pos:]
    if "%" in rest:
        raise PermError(f"bad macro in {spec!r}")
    out.append(rest)
    return "".join(out)


def _macro_value(letter: str, req: _Request, domain: str) -> str:
    local, _, sender_domain = req.sender.rpartition("@")
    if letter == "s":
        return req.sender
    if letter == "l":
        return local
    if letter == "o":
        return sender_domain
    if letter == "d":
        return domain
    if letter in ("i", "c"):
        if req.ip.version == 4:
            return str(req.ip)
        return ".".join(req.ip.exploded.replace(":", ""))  # §7.3: nibbles
    if letter == "v":
        return "in-addr" if req.ip.version == 4 else "ip6"
    if letter == "h":
        return req.helo
    if letter == "p":
        return "unknown"  # §7.3: the p macro SHOULD NOT be used; no PTR lookup for it
    raise PermError(f"macro %{{{letter}}} is only allowed in exp")
