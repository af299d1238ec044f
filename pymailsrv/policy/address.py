"""Pure helpers on envelope addresses and host names, the way Postfix's smtpd and trivial-rewrite
see them (no I/O). Used by the access-map key expansion and the relay checks.

Implementation notes:
- :func:`internalize` turns the external (quoted) form into Postfix's internal form:
  ``"john@remote"@example.com`` → ``john@remote@example.com``.
- :func:`route` follows trivial-rewrite's resolve loop: source routes (``@a,@b:user@c``) are
  dropped (RFC 5321 §4.1.1.3: servers ignore them; Postfix too, and delivers to ``user@c``), a
  local domain is stripped and the local part re-examined (an ``@``, a bang path or a
  ``%`` there makes the address *routed*), and a non-local address whose local part still holds
  ``@``, ``!`` or ``%`` is *routed* too. A routed address is never an authorized destination
  (``allow_untrusted_routing = no``), which closes the classic open-relay tricks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$", re.IGNORECASE)
MAX_ROUTE_STEPS = 20


def strip_brackets(address: str) -> str:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return address


def internalize(address: str) -> str:
    """Remove RFC 5321 quoting of the local part: quotes go, backslash escapes resolve."""
    address = strip_brackets(address)
    if '"' not in address and "\\" not in address:
        return address
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(address):
        ch = address[i]
        if ch == "\\" and i + 1 < len(address):
            out.append(address[i + 1])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def strip_source_route(address: str) -> str:
    """``@a,@b:user@c`` → ``user@c``, as smtpd does when it reads MAIL FROM / RCPT TO."""
    if address.startswith("@") and ":" in address:
        return address.split(":", 1)[1]
    return address


def normalize(address: str) -> str:
    """The form Postfix's smtpd keeps and names in replies and logs: no angle brackets, an
    unquoted source route dropped, the local part unquoted (``"a@b"@c`` → ``a@b@c``)."""
    return internalize(strip_source_route(strip_brackets(address)))


def address_syntax_ok(address: str) -> bool:
    """Postfix's "Bad ... address syntax" check (trivial-rewrite's RESOLVE_FLAG_ERROR): the final
    domain must be a host name (not all-numeric) or an address literal; ``user@`` is bad."""
    addr = normalize(address)
    for _ in range(MAX_ROUTE_STEPS):
        local, at, domain = addr.rpartition("@")
        if not at:
            return True
        if domain:
            break
        if "@" not in local:
            return False
        addr = local  # "user@example.com@": the trailing "@" goes
    else:
        return False
    if domain.endswith(".") and not domain.endswith(".."):
        domain = domain[:-1]
    if is_ip_literal(domain):
        return literal_address(domain) is not None
    return valid_hostname(domain)


def split_address(address: str) -> tuple[str, str]:
    """(local part, domain) at the last ``@``; domain "" when there is none."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, ""
    return local, domain


def strip_extension(local: str, delimiters: str) -> tuple[str, str]:
    """``user+ext`` → (``user``, ``+ext``) for the first delimiter found (recipient_delimiter may
    name several characters)."""
    if not delimiters or local.lower() in ("postmaster", "mailer-daemon"):
        return local, ""
    for i, ch in enumerate(local):
        if ch in delimiters and i > 0:
            return local[:i], local[i:]
    return local, ""


def is_ip_literal(domain: str) -> bool:
    return domain.startswith("[") and domain.endswith("]")


def literal_address(domain: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``[1.2.3.4]`` / ``[IPv6:::1]`` → the address, else None."""
    if not is_ip_literal(domain):
        return None
    inner = domain[1:-1]
    if inner.lower().startswith("ipv6:"):
        inner = inner[5:]
    try:
        return ipaddress.ip_address(inner)
    except ValueError:
        return None


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def valid_hostname(name: str) -> bool:
    """Postfix valid_hostname(): letters, digits, hyphens and underscores in labels of 1-63
    characters, no hyphen at either end of a label, at most 255 characters, not all-numeric."""
    name = name[:-1] if name.endswith(".") else name
    if not name or len(name) > 255:
        return False
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        return False
    return not all(label.isdigit() for label in labels)


def valid_helo(name: str) -> bool:
    """A syntactically valid HELO argument: a host name, an address literal or a bare address."""
    if is_ip_literal(name):
        return literal_address(name) is not None
    return valid_hostname(name) or is_ip(name)


def is_fqdn_domain(domain: str) -> bool:
    if is_ip_literal(domain):
        return literal_address(domain) is not None
    domain = domain[:-1] if domain.endswith(".") else domain
    return "." in domain and valid_hostname(domain)


@dataclass(frozen=True, slots=True)
class Routed:
    """Where an address ends up: ``local@domain`` (domain "" when local-only), whether the
    domain was one of ours that trivial-rewrite strips (``local_domain``), and ``routed``."""

    local: str
    domain: str
    routed: bool
    local_domain: bool

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}" if self.domain else self.local


async def route(address: str, is_local: Callable[[str], Awaitable[bool]], *,
                percent_hack: bool = True, swap_bangpath: bool = True) -> Routed:
    """Follow ``address`` through source routes, local domains, bang paths and the ``%`` hack."""
    addr = internalize(address)
    routed = False
    stripped_local = ""
    for _ in range(MAX_ROUTE_STEPS):
        if addr.startswith("@") and ":" in addr:  # source route @a,@b:user@c (RFC 5321 §4.1.2)
            addr = addr.split(":", 1)[1]
            continue
        if addr.endswith(".") and not addr.endswith("..") and not addr.endswith("@."):
            addr = addr[:-1]
        local, domain = split_address(addr)
        if domain and await is_local(domain.lower()):
            stripped_local = domain.lower()
            addr = local
            if "@" in local:
                routed = True
            continue
        if domain:
            if "@" in local or "%" in local or "!" in local:
                routed = True
            return Routed(local, domain.lower(), routed, False)
        if "@" in addr:  # "user@" with an empty domain: drop the "@"
            addr = addr.rstrip("@")
            continue
        if swap_bangpath and "!" in addr:
            host, _, rest = addr.partition("!")
            addr = f"{rest}@{host}"
            routed = True
            continue
        if percent_hack and "%" in addr:
            head, _, tail = addr.rpartition("%")
            addr = f"{head}@{tail}"
            routed = True
            continue
        return Routed(addr, stripped_local, routed, True)
    return Routed(addr, "", True, False)
