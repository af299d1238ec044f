"""``regexp:`` and ``pcre:`` tables, both on Python ``re``.

Syntax (regexp_table(5) / pcre_table(5)): ``/pattern/flags result``, ``!/pattern/flags result``
(match when the pattern does not), ``if /pattern/flags`` … ``endif`` blocks (nestable), any
non-blank delimiter, ``$1`` / ``${1}`` / ``$(1)`` substitution of groups and ``$$`` for ``$``.
Matching is case-insensitive unless the ``i`` flag toggles it; first match wins.
POSIX bracket classes (``[[:alpha:]]``) are translated for ``regexp:`` tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pymailsrv.errors import ConfigError
from pymailsrv.policy.tables.source import ReloadingSource, logical_lines

_POSIX = {
    "[:alpha:]": "a-zA-Z", "[:digit:]": "0-9", "[:alnum:]": "a-zA-Z0-9", "[:upper:]": "A-Z",
    "[:lower:]": "a-z", "[:space:]": r"\s", "[:blank:]": r" \t", "[:xdigit:]": "0-9A-Fa-f",
    "[:punct:]": r"!-/:-@\[-`{-~", "[:print:]": r" -~", "[:graph:]": r"!-~", "[:cntrl:]": r"\x00-\x1f\x7f",
}
_SUBST = re.compile(r"\$(?:(\d)|\{(\d+)\}|\((\d+)\)|(\$))")


@dataclass(slots=True)
class Rule:
    pattern: re.Pattern[str]
    negate: bool
    result: str = ""
    children: list[Rule] | None = None

    def match(self, key: str) -> re.Match[str] | bool | None:
        m = self.pattern.search(key)
        if self.negate:
            return m is None
        return m


@dataclass(slots=True)
class RegexpMap:
    rules: list[Rule] = field(default_factory=list)

    def lookup(self, key: str) -> str | None:
        return _walk(self.rules, key)


def _walk(rules: list[Rule], key: str) -> str | None:
    for rule in rules:
        m = rule.match(key)
        if not m:
            continue
        if rule.children is not None:
            found = _walk(rule.children, key)
            if found is not None:
                return found
            continue
        return expand_result(rule.result, m if isinstance(m, re.Match) else None)
    return None


def expand_result(result: str, m: re.Match[str] | None) -> str:
    if "$" not in result:
        return result

    def repl(sub: re.Match[str]) -> str:
        if sub.group(4) or m is None:
            return "$"
        index = int(sub.group(1) or sub.group(2) or sub.group(3))
        return m.group(index) or ""

    return _SUBST.sub(repl, result)


def _split_pattern(text: str, where: str) -> tuple[str, str, bool, str]:
    """``!/pat/flags rest`` → (pattern, flags, negate, rest)."""
    negate = text.startswith("!")
    if negate:
        text = text[1:]
    if not text or text[0].isspace():
        raise ConfigError(f"{where}: missing pattern")
    delim = text[0]
    i = 1
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 2
            continue
        if text[i] == delim:
            break
        i += 1
    else:
        raise ConfigError(f'{where}: missing closing "{delim}" after pattern')
    pattern = text[1:i]
    if delim != "/":
        pattern = pattern.replace("\\" + delim, delim)
    j = i + 1
    while j < len(text) and not text[j].isspace():
        j += 1
    return pattern, text[i + 1:j], negate, text[j:].strip()


def compile_pattern(pattern: str, flags: str, where: str, *, posix: bool) -> re.Pattern[str]:
    ignore_case = True
    reflags = 0
    for ch in flags:
        if ch == "i":
            ignore_case = not ignore_case
        elif ch == "m":
            reflags |= re.MULTILINE
        elif ch == "s":
            reflags |= re.DOTALL
        elif ch == "x":
            reflags |= re.VERBOSE
        elif ch in "AEUX":
            continue  # PCRE-only tuning flags with no Python counterpart worth emulating
        else:
            raise ConfigError(f'{where}: unknown regexp flag "{ch}"')
    if ignore_case:
        reflags |= re.IGNORECASE
    if posix:
        for name, repl in _POSIX.items():
            pattern = pattern.replace(name, repl)
    try:
        return re.compile(pattern, reflags)
    except re.error as exc:
        raise ConfigError(f'{where}: bad regular expression "{pattern}": {exc}') from None


def parse_regexp(text: str, filename: str = "<string>", *, posix: bool = True) -> RegexpMap:
    root: list[Rule] = []
    stack: list[list[Rule]] = [root]
    for number, line in logical_lines(text):
        where = f"{filename}, line {number}"
        low = line.lower()
        if low == "endif":
            if len(stack) == 1:
                raise ConfigError(f"{where}: ignoring ENDIF without matching IF")
            stack.pop()
            continue
        is_if = low.startswith("if") and len(line) > 2 and (line[2].isspace() or line[2] == "!")
        body = line[2:].strip() if is_if else line
        pattern, flags, negate, rest = _split_pattern(body, where)
        compiled = compile_pattern(pattern, flags, where, posix=posix)
        if is_if:
            rule = Rule(compiled, negate, children=[])
            stack[-1].append(rule)
            assert rule.children is not None
            stack.append(rule.children)
            continue
        if not rest:
            raise ConfigError(f"{where}: no replacement text after pattern")
        _check_groups(rest, compiled, negate, where)
        stack[-1].append(Rule(compiled, negate, rest))
    if len(stack) != 1:
        raise ConfigError(f"{filename}: IF has no matching ENDIF")
    return RegexpMap(root)


def _check_groups(result: str, pattern: re.Pattern[str], negate: bool, where: str) -> None:
    for sub in _SUBST.finditer(result):
        if sub.group(4):
            continue
        if negate:
            raise ConfigError(f"{where}: $number found in negative match replacement text")
        index = int(sub.group(1) or sub.group(2) or sub.group(3))
        if index > pattern.groups:
            raise ConfigError(f"{where}: out of range replacement index \"{index}\"")


class RegexpTable:
    def __init__(self, path: str, *, check_interval: float = 1.0, type_name: str = "regexp") -> None:
        self.type_name = type_name
        posix = type_name == "regexp"
        self._source = ReloadingSource(path, lambda text, name: parse_regexp(text, name, posix=posix),
                                       check_interval)

    async def get(self, key: str) -> str | None:
        return self._source.get().lookup(key)

    def __repr__(self) -> str:
        return f"{self.type_name}:{self._source.path}"
