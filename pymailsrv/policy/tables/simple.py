"""``static:`` and ``inline:`` tables (no file behind them)."""

from __future__ import annotations

from pymailsrv.config.parser import split_list
from pymailsrv.errors import ConfigError


def strip_braces(text: str) -> str:
    """``{ text }`` → ``text`` (Postfix's grouping for values with spaces or commas)."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        return text[1:-1].strip()
    return text


class StaticTable:
    """Every key maps to the same value."""

    def __init__(self, value: str) -> None:
        self.value = strip_braces(value)

    async def get(self, key: str) -> str | None:
        return self.value

    def __repr__(self) -> str:
        return f"static:{self.value}"


def parse_inline(spec: str) -> dict[str, str]:
    """``{ key=value, { key = text with spaces }, … }`` → dict (keys case-folded)."""
    body = spec.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise ConfigError(f'inline table "inline:{spec}": expected "{{ key=value, ... }}"')
    table: dict[str, str] = {}
    for item in split_list(body[1:-1]):
        item = strip_braces(item)
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f'inline table "inline:{spec}": expected "key=value", got "{item}"')
        table.setdefault(key.strip().lower(), value.strip())
    return table


class InlineTable:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._table = parse_inline(spec)

    async def get(self, key: str) -> str | None:
        return self._table.get(key.lower())

    def __repr__(self) -> str:
        return f"inline:{self.spec}"
