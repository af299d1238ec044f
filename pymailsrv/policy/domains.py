"""Which domains are ours, and whether a recipient/sender of ours exists.

Address classes as trivial-rewrite assigns them: ``local`` (mydestination, our own IP literals),
``virtual_alias`` (virtual_alias_domains), ``virtual_mailbox`` (virtual_mailbox_domains and every
active domain of the Directory), ``relay`` (relay_domains and the Directory's backup-MX/relay
domains), else ``default`` (somebody else's). The first three are final destinations.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from pymailsrv.config.settings import Settings
from pymailsrv.db.base import Directory
from pymailsrv.policy.access import domain_keys
from pymailsrv.policy.address import Routed, literal_address, route, split_address, strip_extension
from pymailsrv.policy.base import LookupTable
from pymailsrv.policy.tables import is_table_spec

Opener = Callable[[str], LookupTable]
_DOMAIN = re.compile(r"[a-z0-9_.-]+|\[[0-9a-f:.]+\]|\[ipv6:[0-9a-f:.]+\]")


class DomainList:
    """A Postfix domain list: names, ``.name`` (subdomains), ``!item`` (negation), ``type:table``.
    With ``parent_match`` (relay_domains, as parent_domain_matches_subdomains has it) ``name``
    also matches its subdomains."""

    def __init__(self, items: list[str], opener: Opener, *, parent_match: bool = False) -> None:
        self.parent_match = parent_match
        self._items: list[tuple[bool, str, LookupTable | None]] = []
        for item in items:
            negate = item.startswith("!")
            body = item[1:] if negate else item
            table = opener(body) if is_table_spec(body) else None
            self._items.append((negate, body.lower().rstrip("."), table))

    def __bool__(self) -> bool:
        return bool(self._items)

    async def contains(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        for negate, name, table in self._items:
            if await self._match(domain, name, table):
                return not negate
        return False

    async def _match(self, domain: str, name: str, table: LookupTable | None) -> bool:
        if table is not None:
            keys = domain_keys(domain) if self.parent_match else [domain]
            for key in keys:
                if key.startswith("."):
                    continue
                if await table.get(key) is not None:
                    return True
            return False
        if domain == name:
            return True
        if name.startswith("."):
            return domain.endswith(name)
        return self.parent_match and domain.endswith("." + name)


class Domains:
    def __init__(self, settings: Settings, directory: Directory, opener: Opener,
                 own_addresses: set[str] | None = None) -> None:
        self.directory = directory
        self.myhostname = settings.get_str("myhostname").lower()
        self.delimiter = settings.get_str("recipient_delimiter")
        self.mydestination = DomainList(settings.get_list("mydestination"), opener)
        self.virtual_alias = DomainList(settings.get_list("virtual_alias_domains"), opener)
        self.virtual_mailbox = DomainList(settings.get_list("virtual_mailbox_domains"), opener)
        self.relay = DomainList(settings.get_list("relay_domains"), opener, parent_match=True)
        self.alias_maps = [opener(s) for s in settings.get_list("virtual_alias_maps")]
        self.mailbox_maps = [opener(s) for s in settings.get_list("virtual_mailbox_maps")]
        self.local_alias_maps = [opener(s) for s in settings.get_list("alias_maps")]
        self.own_addresses = own_addresses if own_addresses is not None else {"127.0.0.1", "::1"}

    async def is_local(self, domain: str) -> bool:
        """trivial-rewrite's resolve_local(): mydestination or a literal of our own address."""
        addr = literal_address(domain)
        if addr is not None:
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            return str(addr) in self.own_addresses
        return await self.mydestination.contains(domain)

    async def route(self, address: str) -> Routed:
        return await route(address, self.is_local)

    async def classify(self, routed: Routed) -> str:
        if routed.local_domain:
            return "local"
        domain = routed.domain
        if not _DOMAIN.fullmatch(domain):
            return "default"  # not a domain name at all (white space, quotes ...): never ours
        if await self.virtual_alias.contains(domain):
            return "virtual_alias"
        if await self.virtual_mailbox.contains(domain) or await self.directory.is_local_domain(domain):
            return "virtual_mailbox"
        if await self.relay.contains(domain) or await self.directory.is_relay_domain(domain):
            return "relay"
        return "default"

    async def _in_tables(self, tables: list[LookupTable], address: str, *, catchall: bool) -> bool:
        local, domain = split_address(address)
        base, _ = strip_extension(local, self.delimiter)
        keys = [address, f"{base}@{domain}"] + ([f"@{domain}"] if catchall else [])
        for table in tables:
            for key in keys:
                if await table.get(key) is not None:
                    return True
        return False

    async def _in_directory(self, address: str) -> bool:
        local, domain = split_address(address)
        base, _ = strip_extension(local, self.delimiter)
        for candidate in dict.fromkeys((address, f"{base}@{domain}")):
            if await self.directory.mailbox(candidate) is not None:
                return True
        targets = await self.directory.resolve(address)
        return targets != [address]

    async def known(self, routed: Routed, klass: str) -> bool:
        """Is the (resolved) address a user we have? ``default`` and ``relay`` always are."""
        address = routed.address.lower()
        if klass == "local":
            local = routed.local.lower()
            base, _ = strip_extension(local, self.delimiter)
            if base in ("postmaster", "mailer-daemon", "abuse"):
                return True
            # local users are one namespace across mydestination: user@any-local == user@myhostname
            names = [f"{local}@{self.myhostname}"]
            if routed.domain and not routed.domain.startswith("["):
                names.insert(0, f"{local}@{routed.domain}")
            for full in dict.fromkeys(names):
                if await self._in_directory(full) or \
                        await self._in_tables(self.alias_maps, full, catchall=False):
                    return True
            for table in self.local_alias_maps:
                if await table.get(base) is not None:
                    return True
            return False
        if klass == "virtual_alias":
            return await self._in_tables(self.alias_maps, address, catchall=True) or \
                await self._in_directory(address)
        if klass == "virtual_mailbox":
            return (await self._in_directory(address)
                    or await self._in_tables(self.mailbox_maps, address, catchall=False)
                    or await self._in_tables(self.alias_maps, address, catchall=True))
        return True
