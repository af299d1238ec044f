"""The router: where each recipient goes (Postfix's trivial-rewrite + virtual alias expansion).

Order for one envelope recipient: a content filter takes the whole message unchanged; otherwise
the Directory expands aliases (recursive, alias domains, catch-all, +extension) and each final
address goes to the first of: the vacation agent for PostfixAdmin's vacation pseudo-targets
(``user#domain@autoreply.domain``, which Postfix sites pipe to vacation.pl), transport_maps
(address, domain, parent domains), the domain's ``transport`` column when it names something
other than ``virtual``, the virtual mailbox (Maildir), "user unknown" for a domain we host or a
mydestination domain (there is no local(8) agent), the relayhost, or the domain itself by MX.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from pymailsrv.config.settings import Settings
from pymailsrv.db.base import Directory
from pymailsrv.delivery.base import Route
from pymailsrv.types import LookupTable

UNKNOWN_USER = "5.1.1 User unknown in virtual mailbox table"
UNKNOWN_LOCAL = "5.1.1 User unknown in local recipient table"
MAX_ALIAS_DEPTH = 100


def parse_transport(value: str, domain: str) -> Route:
    """``transport:nexthop`` as in transport_maps and the domain column; an empty nexthop means
    the recipient's domain; ``relay`` is delivered by the SMTP client; ``error:text`` bounces."""
    value = value.strip()
    transport, _, nexthop = value.partition(":")
    transport = transport.strip().lower() or "smtp"
    if transport == "relay":
        transport = "smtp"
    if transport in ("virtual", "maildrop", "dovecot", "local"):
        return Route("virtual", "")
    if transport in ("smtp", "lmtp"):
        return Route(transport, nexthop.strip() or domain)
    if transport in ("error", "discard"):
        return Route(transport, nexthop.strip())
    if transport == "vacation":  # the pipe to vacation.pl in PostfixAdmin's Postfix setup
        return Route("vacation", "")
    return Route("error", f"4.3.5 unknown mail transport {transport!r}")


class DirectoryRouter:
    """Implements ``delivery.base.Router``."""

    def __init__(self, settings: Settings, directory: Directory, transport_tables: Sequence[LookupTable] = (),
                 alias_tables: Sequence[LookupTable] = (),
                 mailbox_backend: Callable[[str], Awaitable[str | None]] | None = None) -> None:
        self.directory = directory
        # lmtp_proxy on a front node: a mailbox's LMTP nexthop ("[host]:port") or None (here)
        self.mailbox_backend = mailbox_backend
        self.tables = list(transport_tables)
        # virtual_alias_maps beyond the database (regexp:, hash: …), consulted before it
        self.alias_tables = list(alias_tables)
        self.relayhost = settings.get_str("relayhost")
        # mydestination names this host; without local(8) and alias_maps nothing is delivered
        # there except through the Directory, and it must never go out by MX (it is us)
        self.mydestination = {d.lower().rstrip(".") for d in settings.get_list("mydestination")}
        self.vacation_domain = settings.get_str("postfixadmin_vacation_domain").strip().lower().rstrip(".")

    async def route(self, address: str, *, skip_filter: bool = False, filter: str = "") -> list[tuple[str, Route]]:
        if filter and not skip_filter:
            return [(address, parse_transport(filter, address.rpartition("@")[2]))]
        out: list[tuple[str, Route]] = []
        for final in await self._expand(address, 0):
            out.append((final, await self._route_final(final)))
        return out

    async def _expand(self, address: str, depth: int) -> list[str]:
        """Extra virtual_alias_maps first (key ``user@domain``, then ``@domain``), recursively
        (a target equal to the key ends the recursion, as in Postfix); then the Directory."""
        value = await self._alias_lookup(address) if self.alias_tables and depth < MAX_ALIAS_DEPTH else None
        if value is None:
            return await self.directory.resolve(address, autoreply=True)
        out: list[str] = []
        for target in (t.strip() for t in value.split(",")):
            if not target:
                continue
            if target.lower() == address.lower():
                expanded = await self.directory.resolve(target, autoreply=True)
            else:
                expanded = await self._expand(target, depth + 1)
            out += [x for x in expanded if x not in out]
        return out

    async def _alias_lookup(self, address: str) -> str | None:
        domain = address.rpartition("@")[2]
        for key in (address.lower(), "@" + domain.lower()):
            for table in self.alias_tables:
                value = await table.get(key)
                if value:
                    return value
        return None

    async def _route_final(self, address: str) -> Route:
        local, _, domain = address.rpartition("@")
        domain = domain.lower()
        if "#" in local and (not self.vacation_domain or domain == self.vacation_domain) \
                and await self.directory.is_vacation_target(address):
            return Route("vacation", "")
        mapped = await self._transport_map(address.lower(), domain)
        if mapped is not None:
            return mapped
        if await self.directory.is_local_domain(domain):
            column = (await self.directory.transport(domain) or "virtual").strip()
            if column and column.split(":")[0].lower() not in ("virtual", "maildrop", "dovecot", "local"):
                return parse_transport(column, domain)
            if await self.directory.mailbox(address) is not None:
                return await self._mailbox_route(address)
            return Route("error", UNKNOWN_USER)
        if domain in self.mydestination:
            return Route("error", UNKNOWN_LOCAL)
        if await self.directory.is_relay_domain(domain):
            relay_column = await self.directory.transport(domain)
            if relay_column and relay_column.strip().split(":")[0].lower() in ("smtp", "relay", "lmtp"):
                route = parse_transport(relay_column, domain)
                if route.nexthop != domain or not self.relayhost:
                    return route
        if self.relayhost:
            return Route("smtp", self.relayhost)
        return Route("smtp", domain)

    async def _mailbox_route(self, address: str) -> Route:
        """A virtual mailbox: this node's Maildir, or the user's backend over LMTP (lmtp_proxy)."""
        if self.mailbox_backend is not None:
            nexthop = await self.mailbox_backend(address)
            if nexthop:
                return Route("lmtp", nexthop)
        return Route("virtual", "")

    async def _transport_map(self, address: str, domain: str) -> Route | None:
        if not self.tables:
            return None
        keys = [address, domain]
        parts = domain.split(".")
        keys += ["." + ".".join(parts[i:]) for i in range(1, len(parts))]
        for table in self.tables:
            for key in keys:
                value = await table.get(key)
                if value:
                    return parse_transport(value, domain)
        return None
