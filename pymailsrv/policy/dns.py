"""DNS questions the restrictions ask (dnspython's async resolver).

``dns_nameservers`` (host or host:port, IPv6 as [addr]:port) points the resolver somewhere else
than /etc/resolv.conf, so tests can use a responder on 127.0.0.1. Each answer is one of
FOUND / NOTFOUND (NXDOMAIN or no data) / TEMPFAIL (timeout, SERVFAIL, refused).
"""

from __future__ import annotations

import enum
import ipaddress
import logging

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from pymailsrv.errors import ConfigError
from pymailsrv.net.networks import client_address

log = logging.getLogger("pymailsrv.policy")


class Status(enum.Enum):
    FOUND = "found"
    NOTFOUND = "notfound"
    TEMPFAIL = "tempfail"


def parse_nameserver(item: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        port = rest.lstrip(":")
    elif item.count(":") == 1:
        host, _, port = item.partition(":")
    else:
        host, port = item, ""
    try:
        ipaddress.ip_address(host)
        return host, int(port or 53)
    except ValueError:
        raise ConfigError(f'dns_nameservers: "{item}" is not an address or address:port') from None


class Resolver:
    """A thin wrapper that turns dnspython's exceptions into :class:`Status` values."""

    def __init__(self, nameservers: list[str] | None = None, *, timeout: float = 5.0, cache_size: int = 0) -> None:
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p)
                                          for h, p in map(parse_nameserver, nameservers)]
        else:
            try:
                self._resolver = dns.asyncresolver.Resolver()
            except (dns.resolver.NoResolverConfiguration, OSError):
                self._resolver = dns.asyncresolver.Resolver(configure=False)
                self._resolver.nameservers = ["127.0.0.1"]
        self._resolver.lifetime = timeout
        self._resolver.timeout = min(timeout, 2.0)
        if cache_size:  # answers kept for their TTL (dnspython's cache), e.g. senders' SPF and DKIM keys
            self._resolver.cache = dns.resolver.LRUCache(cache_size)

    async def query(self, name: str, rdtype: str) -> tuple[Status, list[str]]:
        """The records of one type as text; NOTFOUND for NXDOMAIN and for an empty answer."""
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return Status.NOTFOUND, []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoRootSOA) as exc:
            log.debug("DNS %s %s: %s", rdtype, name, type(exc).__name__)
            return Status.TEMPFAIL, []
        except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong, ValueError):
            return Status.NOTFOUND, []
        except dns.exception.DNSException as exc:
            log.debug("DNS %s %s: %s", rdtype, name, type(exc).__name__)
            return Status.TEMPFAIL, []
        if answer.rrset is None:
            return Status.NOTFOUND, []
        return Status.FOUND, [_text(r) for r in answer.rrset]

    async def host_status(self, name: str) -> Status:
        """A name that has an A, AAAA or MX record (reject_unknown_helo_hostname)."""
        temp = False
        for rdtype in ("A", "AAAA", "MX"):
            status, _ = await self.query(name, rdtype)
            if status is Status.FOUND:
                return Status.FOUND
            temp = temp or status is Status.TEMPFAIL
        return Status.TEMPFAIL if temp else Status.NOTFOUND

    async def mail_domain_status(self, domain: str) -> tuple[Status, bool]:
        """(status, null_mx) for a mail domain: MX, else A/AAAA (reject_unknown_*_domain).
        ``null_mx`` is True for the RFC 7505 ``MX 0 .`` record."""
        status, mx = await self.query(domain, "MX")
        if status is Status.FOUND:
            null = len(mx) == 1 and mx[0].split()[-1] == "."
            return Status.FOUND, null
        if status is Status.TEMPFAIL:
            return status, False
        return await self.host_status_no_mx(domain), False

    async def host_status_no_mx(self, name: str) -> Status:
        temp = False
        for rdtype in ("A", "AAAA"):
            status, _ = await self.query(name, rdtype)
            if status is Status.FOUND:
                return Status.FOUND
            temp = temp or status is Status.TEMPFAIL
        return Status.TEMPFAIL if temp else Status.NOTFOUND


def _text(rdata: object) -> str:
    if getattr(rdata, "rdtype", None) == dns.rdatatype.TXT:
        strings = getattr(rdata, "strings", ())
        return "".join(s.decode("utf-8", "replace") for s in strings)
    return str(rdata)


def reverse_ip(address: str) -> str | None:
    """``1.2.3.4`` → ``4.3.2.1``; IPv6 → the nibble form (DNSBL query prefix)."""
    addr = client_address(address)
    if addr is None:
        return None
    if addr.version == 4:
        return ".".join(reversed(str(addr).split(".")))
    return ".".join(reversed(addr.exploded.replace(":", "")))
