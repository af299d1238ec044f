"""MX and address lookups for the SMTP client (dnspython, configurable resolvers).

RFC 5321 §5.1: MX records by preference; without MX records the domain's own address records are
an implicit MX. RFC 7505: a single MX of "." (null MX) means the domain accepts no mail.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from pymailsrv.errors import PymailsrvError, TemporaryFailure


class NoSuchDomain(PymailsrvError):
    """NXDOMAIN: the name does not exist (a permanent failure)."""


class NullMX(PymailsrvError):
    """The domain publishes a null MX (RFC 7505 §3): it accepts no mail."""


def make_resolver(nameservers: Sequence[str], timeout: float = 10.0) -> dns.asyncresolver.Resolver:
    """A resolver using ``host`` or ``host:port`` (``[v6]:port``) servers; empty = the system's."""
    if not nameservers:
        res = dns.asyncresolver.Resolver()
    else:
        res = dns.asyncresolver.Resolver(configure=False)
        servers: list[dns.nameserver.Nameserver | str] = []
        for item in nameservers:
            host, port = item, 53
            if item.startswith("["):
                host, _, rest = item[1:].partition("]")
                port = int(rest.lstrip(":") or 53)
            elif item.count(":") == 1:
                host, _, p = item.partition(":")
                port = int(p)
            servers.append(dns.nameserver.Do53Nameserver(host, port))
        res.nameservers = servers
    res.lifetime = timeout
    res.timeout = timeout
    return res


class MxResolver:
    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self.resolver = resolver

    async def _query(self, name: str, rdtype: str) -> list[object] | None:
        """Answers, or None for "no records of this type"; raises NoSuchDomain/TemporaryFailure."""
        try:
            answer = await self.resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise NoSuchDomain(name) from None
        except dns.resolver.NoAnswer:
            return None
        except dns.exception.DNSException:  # SERVFAIL, timeouts: Postfix's wording for TRY_AGAIN
            raise TemporaryFailure(f"Name service error for name={name} type={rdtype}: "
                                   "Host not found, try again") from None
        return list(answer)

    async def mx_hosts(self, domain: str) -> list[str]:
        """Exchange host names by preference (random order among equals); [domain] when the
        domain has no MX records (implicit MX). Raises NullMX, NoSuchDomain, TemporaryFailure."""
        records = await self._query(domain, "MX")
        if records is None:
            return [domain]
        mx = [(int(r.preference), str(r.exchange).rstrip(".")) for r in records]  # type: ignore[attr-defined]
        if len(mx) == 1 and mx[0][1] in ("", "."):
            raise NullMX(domain)  # RFC 7505 §3
        random.shuffle(mx)
        mx.sort(key=lambda p: p[0])
        return [host for _, host in mx if host]

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of a host; [] if it has none."""
        out: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                records = await self._query(host, rdtype)
            except NoSuchDomain:
                return out
            out += [str(r) for r in records or ()]
        return out
