"""The table of built-in restrictions: ``BUILTINS[name] = BuiltinRestriction(takes_arg, make)``.

Each entry is compiled once per list position: ``make(engine, arg)`` checks and prepares the
argument (opens the table, parses the DNSBL zone) and returns the coroutine function that runs
for each check (STYLE rule 2: one explicit table, no reflection)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymailsrv.log import get_logger
from pymailsrv.policy.base import Decision
from pymailsrv.policy.context import Ctx

if TYPE_CHECKING:
    from pymailsrv.policy.restrictions import RestrictionEngine
log = get_logger("smtpd")
StepFn = Callable[[Ctx], Awaitable[Decision]]
Check = Callable[["RestrictionEngine", Ctx], Awaitable[Decision]]
CheckArg = Callable[["RestrictionEngine", Ctx, object], Awaitable[Decision]]


@dataclass(frozen=True, slots=True)
class BuiltinRestriction:
    takes_arg: bool
    make: Callable[[RestrictionEngine, str | None], StepFn]


BUILTINS: dict[str, BuiltinRestriction] = {}


def simple(*names: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        def make(engine: RestrictionEngine, arg: str | None) -> StepFn:
            async def run(ctx: Ctx) -> Decision:
                return await fn(engine, ctx)
            return run
        for name in names:
            BUILTINS[name] = BuiltinRestriction(False, make)
        return fn
    return register


def with_arg(prepare: Callable[[RestrictionEngine, str], object],
             *names: str) -> Callable[[CheckArg], CheckArg]:
    def register(fn: CheckArg) -> CheckArg:
        def make(engine: RestrictionEngine, arg: str | None) -> StepFn:
            assert arg is not None
            prepared = prepare(engine, arg)

            async def run(ctx: Ctx) -> Decision:
                return await fn(engine, ctx, prepared)
            return run
        for name in names:
            BUILTINS[name] = BuiltinRestriction(True, make)
        return fn
    return register


def code(engine: RestrictionEngine, param: str) -> int:
    return engine.settings.get_int(param)
