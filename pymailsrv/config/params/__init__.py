"""The one declared parameter table (STYLE.md rule 12), assembled from one module per area: every
module of this package but ``spec`` declares its parameters as ``PARAMS``."""

import importlib
import pkgutil

from pymailsrv.config.params.spec import Param, ParamType


def _collect() -> dict[str, Param]:
    table: dict[str, Param] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module != "spec":
            params: tuple[Param, ...] = importlib.import_module(f"{__name__}.{module}").PARAMS
            table.update((p.name, p) for p in params)
    return table


PARAMETERS: dict[str, Param] = _collect()

__all__ = ["PARAMETERS", "Param", "ParamType"]
