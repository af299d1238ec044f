"""A pipeline from its parameter, checked at start-up (docs/pipeline.md)::

    smtpd_pipeline = restrictions, header_checks, cleanup, content_filter,
        { python:site_stages:make_stage, default_action = accept, timeout = 10s }

An item names a built-in stage (whatever the caller's table offers) or ``python:MODULE:FACTORY``,
a callable that takes the Settings and returns a Stage. ``{ name, option = value, … }`` sets that
stage's ``default_action`` (accept | tempfail | reject | quarantine; default
pipeline_default_action) and ``timeout`` (per hook; default: the stage's own limit, else
pipeline_stage_timeout), as Postfix 3 sets one milter's options.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import cast

from pymailsrv.config.settings import Settings, parse_time
from pymailsrv.errors import ConfigError
from pymailsrv.pipeline.base import EVENTS, Stage
from pymailsrv.pipeline.runner import FAILURE_ACTIONS, FailureAction, Pipeline, Slot

StageFactory = Callable[[], Stage]
PYTHON = "python:"


def build_pipeline(param: str, settings: Settings, builtins: Mapping[str, StageFactory]) -> Pipeline:
    """The stages ``param`` names, in order; ConfigError (naming ``param``) for an unknown stage,
    a stage named twice, a factory that cannot be loaded or a bad option."""
    default_action = cast(FailureAction, settings.get_str("pipeline_default_action"))
    default_timeout = settings.get_seconds("pipeline_stage_timeout")
    slots: list[Slot] = []
    for item in settings.get_list(param):
        name, options = parse_item(item, param)
        stage = _make(name, param, settings, builtins)
        if any(slot.stage.name == stage.name for slot in slots):
            raise ConfigError(f'{param}: stage "{stage.name}" is listed twice')
        timeout = stage.timeout if stage.timeout is not None else default_timeout
        if "timeout" in options:
            timeout = _option_time(options["timeout"], param, name)
        action = options.get("default_action", default_action)
        if action not in FAILURE_ACTIONS:
            raise ConfigError(f'{param}: {name}: bad default_action "{action}" (one of: '
                              f'{", ".join(FAILURE_ACTIONS)})')
        slots.append(Slot(stage, timeout, action))
    return Pipeline(slots)


def parse_item(item: str, param: str, known: Sequence[str] = ("default_action", "timeout")
               ) -> tuple[str, dict[str, str]]:
    """``name`` or ``{ name, key = value, … }`` → (name, options); ``known``: the option names
    (a stage's by default; the milter lists take the same form with their own)."""
    if not item.startswith("{"):
        return item, {}
    if not item.endswith("}"):
        raise ConfigError(f'{param}: missing "}}" in "{item}"')
    parts = [p.strip() for p in item[1:-1].split(",") if p.strip()]
    if not parts:
        raise ConfigError(f'{param}: empty "{{ }}"')
    name, options = parts[0], {}
    for part in parts[1:]:
        key, eq, value = (x.strip() for x in part.partition("="))
        if not eq or key not in known:
            raise ConfigError(f'{param}: {name}: unknown option "{part}" ({", ".join(known)})')
        options[key] = value
    return name, options


def _option_time(text: str, param: str, name: str) -> float:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ConfigError(f"{param}: {name}: timeout: {exc}") from None


def _make(name: str, param: str, settings: Settings, builtins: Mapping[str, StageFactory]) -> Stage:
    if name in builtins:
        return builtins[name]()
    if not name.startswith(PYTHON):
        raise ConfigError(f'{param}: unknown stage "{name}" (built-in: {", ".join(builtins)}; '
                          f"or {PYTHON}MODULE:FACTORY)")
    module_name, _, attr = name[len(PYTHON):].partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
        stage = cast(Stage, factory(settings))
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{param}: cannot load {name}: {type(exc).__name__}: {exc}") from None
    if not isinstance(stage, Stage) or not stage.name or not stage.events <= set(EVENTS):
        raise ConfigError(f"{param}: {name} is not a stage (a name and events among {', '.join(EVENTS)})")
    return stage
