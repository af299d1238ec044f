"""Comparators and match types (RFC 5228 §2.7, RFC 5231 relational, regex draft).

Pure module. A match sets the match variables (RFC 5229 §3.2) through the returned groups.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import re2  # google-re2

from pymailsrv.sieve.errors import SieveRuntimeError

MAX_GROUPS = 10  # ${0} … ${9}


def fold(s: str, comparator: str) -> str:
    """i;ascii-casemap folds ASCII letters only (RFC 4790 §9.2)."""
    if comparator == "i;ascii-casemap":
        return s.translate(_ASCII_LOWER) if not s.isascii() else s.lower()
    return s


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def numeric(s: str) -> int | None:
    """i;ascii-numeric (RFC 4790 §9.1): the leading digits; a string without them is infinity (None)."""
    m = re.match(r"[0-9]+", s)
    return int(m.group()) if m else None


def relate(a: str, b: str, rel: str, comparator: str) -> bool:
    """``a REL b`` under the comparator (RFC 5231 §4)."""
    if comparator == "i;ascii-numeric":
        x, y = numeric(a), numeric(b)
        # infinity is equal to itself and greater than every number
        c = 0 if x == y else (1 if x is None else -1 if y is None else (x > y) - (x < y))
    else:
        fa, fb = fold(a, comparator), fold(b, comparator)
        c = (fa > fb) - (fa < fb)
    return {"gt": c > 0, "ge": c >= 0, "lt": c < 0, "le": c <= 0, "eq": c == 0, "ne": c != 0}[rel]


@lru_cache(maxsize=1024)
def glob_regex(pattern: str, casefold: bool = False) -> Any:
    """``:matches`` (RFC 5228 §2.7.1): ``*`` any run, ``?`` one character, ``\\`` escapes; each
    wildcard is a group so the match variables can be read back (the leftmost ``*`` takes as
    little as it can, RFC 5229 §3.2). RE2, so ``*a*a*a*b`` on a long value stays linear."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append("(.*?)" if ch == "*" else "(.)" if ch == "?" else re.escape(ch))
        i += 1
    options = re2.Options()
    options.log_errors = False
    options.dot_nl = True
    options.case_sensitive = not casefold
    return re2.compile("".join(out), options)


def octets(s: str) -> str:
    """The UTF-8 octets of s, one character each (Latin-1): i;octet and i;ascii-casemap compare
    octet strings (RFC 4790 §9), so ``?`` stands for one octet, as in Pigeonhole."""
    return s.encode("utf-8", "surrogateescape").decode("latin-1")


def from_octets(s: str) -> str:
    return s.encode("latin-1").decode("utf-8", "replace")


def _re2_options(casefold: bool) -> Any:
    """POSIX extended syntax, leftmost-longest, ``^``/``$`` at the ends only and ``.`` matching a
    line break: regcomp(REG_EXTENDED) without REG_NEWLINE, as Pigeonhole compiles it."""
    options = re2.Options()
    options.log_errors = False  # a bad user pattern is the script's error, reported as such
    options.posix_syntax = True
    options.longest_match = True
    options.one_line = True
    options.dot_nl = True
    options.case_sensitive = not casefold
    return options


@lru_cache(maxsize=1024)
def user_regex(pattern: str, casefold: bool) -> Any:
    """A ``:regex`` key, compiled by RE2: matching takes time linear in the input whatever the
    pattern, so a script cannot stall deliveries with a catastrophic one (regex draft §5)."""
    try:
        return re2.compile(pattern, _re2_options(casefold))
    except re2.error as exc:
        raise SieveRuntimeError(f"invalid regular expression '{pattern}': {exc}") from None


def match_one(value: str, key: str, match: str, comparator: str, rel: str = "") -> list[str] | None:
    """Does value match key? Returns the match groups (``${0}`` first) when it does, else None.
    ``:count`` is handled by the caller (it matches a number of values, not one)."""
    if comparator == "i;ascii-numeric":
        if match == "is":
            return [value] if relate(value, key, "eq", comparator) else None
        if match == "value":
            return [value] if relate(value, key, rel, comparator) else None
        raise SieveRuntimeError(f"comparator i;ascii-numeric cannot do :{match}")
    if match == "is":
        return [value] if fold(value, comparator) == fold(key, comparator) else None
    if match == "contains":
        return [value] if fold(key, comparator) in fold(value, comparator) else None
    if match == "value":
        return [value] if relate(value, key, rel, comparator) else None
    casefold = comparator == "i;ascii-casemap"
    if match == "matches":
        # i;ascii-casemap folds ASCII letters only: fold both sides (1:1 in length) and read
        # the match variables back from the original value by position
        raw = octets(value)
        m = glob_regex(fold(octets(key), comparator), False).fullmatch(fold(raw, comparator))
        if not m:
            return None
        groups = (from_octets(raw[m.start(i):m.end(i)]) for i in range(1, len(m.groups()) + 1))
        return [value, *groups][:MAX_GROUPS]
    if match == "regex":
        m = user_regex(key, casefold).search(value)
        return [str(m.group(0)), *(str(g or "") for g in m.groups())][:MAX_GROUPS] if m else None
    raise SieveRuntimeError(f"unknown match type :{match}")


def match_any(values: Sequence[str], keys: Sequence[str], match: str, comparator: str,
              rel: str = "") -> tuple[bool, list[str] | None]:
    """The test's answer over every value and key (RFC 5228 §2.7), and the groups of the first match."""
    if match == "count":
        n = str(len(values))
        return any(relate(n, k, rel, "i;ascii-numeric" if comparator == "i;ascii-numeric" else comparator)
                   for k in keys), None
    for v in values:
        for k in keys:
            groups = match_one(v, k, match, comparator, rel)
            if groups is not None:
                return True, groups
    return False, None
