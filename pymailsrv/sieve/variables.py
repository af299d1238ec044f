"""Variables (RFC 5229): scopes, ``${…}`` expansion and the ``set`` modifiers.

Pure module. Sizes are bounded (Pigeonhole's ``sieve_variables_max_variable_size`` and
``…_max_scope_size``) so a script cannot grow memory without limit.
"""

from __future__ import annotations

import re
import urllib.parse

from pymailsrv.sieve.errors import SieveRuntimeError

MAX_VARIABLE_SIZE = 4096
MAX_SCOPE_SIZE = 255

_REF = re.compile(r"\$\{([^{}]*)\}")
_NAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|[0-9]+)$")


class Scope:
    """One script's variables; names declared ``global`` (RFC 6609 §3.5) live in ``shared``."""

    def __init__(self, shared: dict[str, str]) -> None:
        self.local: dict[str, str] = {}
        self.shared = shared
        self.globals: set[str] = set()
        self.groups: list[str] = []  # match variables ${0}…${9}

    def get(self, name: str) -> str:
        n = name.lower()
        if n.isdigit():
            i = int(n)
            return self.groups[i] if i < len(self.groups) else ""
        if n.startswith("global."):
            return self.shared.get(n[7:], "")
        if "." in n:
            return ""  # an unknown namespace expands to nothing
        return (self.shared if n in self.globals else self.local).get(n, "")

    def set(self, name: str, value: str) -> None:
        n = name.lower()
        value = _cut(value)
        if n.startswith("global."):
            target, n = self.shared, n[7:]
        else:
            target = self.shared if n in self.globals else self.local
        if n not in target and len(target) >= MAX_SCOPE_SIZE:
            raise SieveRuntimeError("too many variables")
        target[n] = value

    def expand(self, s: str) -> str:
        if "${" not in s:
            return s

        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            return self.get(name) if _NAME.match(name) else m.group(0)

        return _cut(_REF.sub(one, s))


def _cut(value: str) -> str:
    if len(value) <= MAX_VARIABLE_SIZE:
        return value
    data = value.encode("utf-8")[:MAX_VARIABLE_SIZE]
    return data.decode("utf-8", "ignore")


# ASCII letters only, as Pigeonhole (and as i;ascii-casemap compares them)
_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_UPPER = {c + 32: c for c in range(ord("A"), ord("Z") + 1)}


def quote_wildcard(s: str) -> str:
    return re.sub(r"([*?\\])", r"\\\1", s)


def apply_modifiers(value: str, modifiers: list[str]) -> str:
    """RFC 5229 §4.1: highest precedence first (lower/upper, then …first, quotewildcard,
    encodeurl (RFC 5435 §7), length)."""
    order = ("lower", "upper", "lowerfirst", "upperfirst", "quotewildcard", "encodeurl", "length")
    for m in order:
        if m not in modifiers:
            continue
        if m == "lower":
            value = value.translate(_LOWER)
        elif m == "upper":
            value = value.translate(_UPPER)
        elif m == "lowerfirst":
            value = value[:1].translate(_LOWER) + value[1:]
        elif m == "upperfirst":
            value = value[:1].translate(_UPPER) + value[1:]
        elif m == "quotewildcard":
            value = quote_wildcard(value)
        elif m == "encodeurl":
            value = urllib.parse.quote(value, safe="-._~")
        else:
            value = str(len(value))
    return value
