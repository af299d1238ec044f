"""The Sieve syntax tree as the grammar gives it (RFC 5228 §8.2), before any command is checked.

Pure module. ``Arg`` values keep their position so a later check can point at them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Pos:
    line: int
    column: int


@dataclass(slots=True)
class StringArg:
    value: str
    pos: Pos


@dataclass(slots=True)
class StringListArg:
    values: list[str]
    pos: Pos


@dataclass(slots=True)
class NumberArg:
    value: int
    pos: Pos


@dataclass(slots=True)
class TagArg:
    name: str  # without the leading ":", lower-cased
    pos: Pos


Arg = StringArg | StringListArg | NumberArg | TagArg


@dataclass(slots=True)
class RawTest:
    name: str  # lower-cased identifier
    args: list[Arg]
    tests: list[RawTest]
    pos: Pos
    test_list: bool = False  # the tests came as "( … )", not as one bare test


@dataclass(slots=True)
class RawCommand:
    name: str
    args: list[Arg]
    tests: list[RawTest]
    block: list[RawCommand] | None
    pos: Pos
    test_list: bool = False
