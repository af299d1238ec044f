"""main.cf syntax (POSTFIX-SEMANTICS §1): pure functions, text in, values out.

- ``name = value`` per line; a line starting with white space continues the previous one;
- ``#`` starts a comment only at the start of a line (after optional white space);
- ``$name``, ``${name}`` and ``$(name)`` expand other parameters lazily; ``$$`` is a literal ``$``;
  ``${name?value}`` / ``${name:value}`` are Postfix's conditional forms;
- lists are separated by commas and/or white space; ``{ … }`` groups keep their insides together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pymailsrv.errors import ConfigError, ConfigErrors

_NAME = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    value: str
    file: str
    line: int


def parse_text(text: str, filename: str = "<string>") -> list[Entry]:
    """Split main.cf text into entries; later entries for a name override earlier ones."""
    entries: list[Entry] = []
    errors: list[ConfigError] = []
    current: list[str] | None = None
    start = 0
    name = ""
    skipping = False  # continuation lines of a line already reported as bad

    def flush() -> None:
        if current is not None:
            entries.append(Entry(name, " ".join(p for p in current if p).strip(), filename, start))

    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0] in " \t":
            if skipping:
                continue
            if current is None:
                errors.append(ConfigError("continuation line without a parameter before it",
                                          file=filename, line=number))
            else:
                current.append(stripped)
            continue
        flush()
        current = None
        skipping = True
        key, eq, value = raw.partition("=")
        key = key.strip()
        if not eq:
            errors.append(ConfigError(f'missing "=" after parameter name: "{stripped[:60]}"',
                                      file=filename, line=number))
            continue
        if not _NAME.fullmatch(key):
            errors.append(ConfigError(f'bad parameter name: "{key[:60]}"', file=filename, line=number))
            continue
        name, start, current, skipping = key, number, [value.strip()], False
    flush()
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise ConfigErrors(errors)
    return entries


def split_list(value: str) -> list[str]:
    """Postfix list splitting: commas and white space separate, ``{…}`` groups stay whole."""
    items: list[str] = []
    buf: list[str] = []
    depth = 0
    for ch in value:
        if ch == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        if depth == 0 and (ch == "," or ch.isspace()):
            if buf:
                items.append("".join(buf))
                buf = []
            continue
        buf.append(ch)
    if buf:
        items.append("".join(buf))
    return items


class ExpansionCycle(ConfigError):
    pass


def expand(value: str, lookup: Callable[[str], str | None], _seen: tuple[str, ...] = ()) -> str:
    """Expand ``$name`` references recursively; ``lookup`` returns a raw value or None (unset:
    expands to empty, as Postfix does). Raises ExpansionCycle on a reference loop."""
    if "$" not in value:
        return value
    return "".join(_expand_parts(value, lookup, _seen))


def _expand_parts(value: str, lookup: Callable[[str], str | None], seen: tuple[str, ...]) -> Iterator[str]:
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch != "$":
            j = value.find("$", i)
            j = n if j < 0 else j
            yield value[i:j]
            i = j
            continue
        if i + 1 < n and value[i + 1] == "$":
            yield "$"
            i += 2
            continue
        if i + 1 < n and value[i + 1] in "{(":
            close = "}" if value[i + 1] == "{" else ")"
            end = _matching(value, i + 1, close)
            if end < 0:
                raise ConfigError(f'unbalanced "{value[i + 1]}" in "{value}"')
            inner = value[i + 2:end]
            i = end + 1
            m = re.match(r"([A-Za-z0-9_]+)(?:([?:])(.*))?$", inner, re.S)
            if not m:
                raise ConfigError(f'bad parameter reference "${{{inner}}}"')
            name, op, alt = m.group(1), m.group(2), m.group(3) or ""
            resolved = _resolve(name, lookup, seen)
            if op == "?":
                yield expand(alt, lookup, seen) if resolved else ""
            elif op == ":":
                yield "" if resolved else expand(alt, lookup, seen)
            else:
                yield resolved
            continue
        m = _NAME.match(value, i + 1)
        if not m:
            yield "$"
            i += 1
            continue
        yield _resolve(m.group(0), lookup, seen)
        i = m.end()


def _resolve(name: str, lookup: Callable[[str], str | None], seen: tuple[str, ...]) -> str:
    if name in seen:
        chain = " -> ".join((*seen, name))
        raise ExpansionCycle(f"parameter reference loop: {chain}")
    raw = lookup(name)
    if raw is None:
        return ""
    return expand(raw, lookup, (*seen, name))


def _matching(value: str, start: int, close: str) -> int:
    opener = value[start]
    depth = 0
    for k in range(start, len(value)):
        if value[k] == opener:
            depth += 1
        elif value[k] == close:
            depth -= 1
            if depth == 0:
                return k
    return -1
