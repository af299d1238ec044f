"""The shape of one declared parameter (STYLE.md rule 12)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

ParamType = Literal["str", "int", "bool", "time", "size", "list", "listen", "path", "file", "enum"]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: ParamType
    default: str  # main.cf text; may reference other parameters with $name
    doc: str
    choices: tuple[str, ...] = ()  # for enum
    unit: str = "s"  # default time unit for "time" values without a suffix
    minimum: int | None = None
    maximum: int | None = None
    auto: Callable[[], int] | None = None  # an "int" that may be "auto": the value it stands for
