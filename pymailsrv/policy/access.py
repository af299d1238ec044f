"""Access maps (access(5)): lookup-key expansion and the parsing of actions (pure).

Key order (POSTFIX-SEMANTICS §4):
- address: ``user+ext@domain``, ``user@domain``, ``domain`` and its parents, ``user+ext@``,
  ``user@``; the null sender is looked up as smtpd_null_access_lookup_key only;
- domain / host name: the name, then each parent as ``parent`` and ``.parent``, so that
  ``domain.tld`` matches its subdomains and ``.domain.tld`` matches only subdomains
  (POSTFIX-SEMANTICS §4). Without smtpd_access_maps in parent_domain_matches_subdomains only the
  ``.parent`` form is tried, exactly as Postfix. (Postfix's default tries only ``parent``, so a
  ``.domain.tld`` key is inert there and active here: the one deliberate difference.)
Pattern tables (cidr, regexp, pcre) get only the whole string: no parents, no split address.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from pymailsrv.net.networks import client_address
from pymailsrv.policy.address import is_ip_literal, split_address, strip_extension

_SIMPLE = {"OK", "REJECT", "DEFER", "DEFER_IF_REJECT", "DEFER_IF_PERMIT", "DUNNO", "HOLD", "DISCARD",
           "REDIRECT", "FILTER", "PREPEND", "WARN", "BCC", "INFO"}
_CODE = re.compile(r"^([45]\d\d)(?:\s+(.*))?$", re.S)
_DSN = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?:\s+(.*))?$", re.S)


def domain_keys(domain: str, *, parent_style: bool = True) -> list[str]:
    """``a.b.example`` → ``a.b.example``, ``b.example``, ``.b.example``, ``example``, ``.example``
    (``parent_style``) or ``a.b.example``, ``.b.example``, ``.example``."""
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        return []
    if is_ip_literal(domain):
        return [domain]
    keys = [domain]
    labels = domain.split(".")
    for i in range(1, len(labels)):
        parent = ".".join(labels[i:])
        keys += [parent, "." + parent] if parent_style else ["." + parent]
    return keys


def address_keys(address: str, *, delimiter: str = "", null_key: str = "<>",
                 parent_style: bool = True) -> list[str]:
    """Access-map keys for an envelope address, most specific first."""
    if address == "":
        return [null_key]
    local, domain = split_address(address)
    domain = domain.rstrip(".").lower()
    base, ext = strip_extension(local, delimiter)
    keys: list[str] = []
    if domain:
        if ext:
            keys.append(f"{local}@{domain}")
        keys.append(f"{base}@{domain}")
        keys += domain_keys(domain, parent_style=parent_style)
    if ext:
        keys.append(f"{local}@")
    keys.append(f"{base}@")
    return keys


def ip_keys(address: str) -> list[str]:
    """``1.2.3.4`` → ``1.2.3.4``, ``1.2.3``, ``1.2``, ``1``; IPv6 in compressed lower-case form
    split at ``:`` from the right, as Postfix's check_addr_access does."""
    return list(_ip_keys(address))


@functools.lru_cache(maxsize=4096)
def _ip_keys(address: str) -> tuple[str, ...]:
    addr = client_address(address)
    if addr is None:
        return (address,) if address else ()
    text = str(addr)
    delim = ":" if addr.version == 6 else "."
    keys = [text]
    while delim in text:
        text = text.rsplit(delim, 1)[0]
        if text:
            keys.append(text)
    return tuple(keys)


def client_keys(name: str, address: str, *, parent_style: bool = True) -> list[str]:
    keys = [] if not name or name == "unknown" else domain_keys(name, parent_style=parent_style)
    return keys + ip_keys(address)


@dataclass(frozen=True, slots=True)
class Action:
    """A parsed access-map value: ``verb`` upper-case (``OK``, ``REJECT``, ``CODE`` for 4NN/5NN,
    ``RESTRICTION`` for a restriction name or class), ``text`` the rest, ``code``/``dsn`` for
    4NN/5NN replies (``dsn`` "" when the text had none)."""

    verb: str
    text: str = ""
    code: int = 0
    dsn: str = ""


def split_dsn(text: str) -> tuple[str, str]:
    """``5.7.1 go away`` → (``5.7.1``, ``go away``); no enhanced code → ("", text)."""
    m = _DSN.match(text.strip())
    if not m:
        return "", text.strip()
    return m.group(1), (m.group(2) or "").strip()


def parse_action(value: str) -> Action:
    value = value.strip()
    if not value:
        return Action("DUNNO")
    if value.isdigit():
        return Action("OK", value)
    m = _CODE.match(value)
    if m:
        dsn, text = split_dsn(m.group(2) or "")
        return Action("CODE", text, int(m.group(1)), dsn)
    parts = value.split(None, 1)
    verb = parts[0].upper()
    if verb in _SIMPLE:
        return Action(verb, parts[1].strip() if len(parts) > 1 else "")
    return Action("RESTRICTION", value)
