"""``pymailsrv postconf``: print parameters as Postfix's postconf does (``name = value``)."""

from __future__ import annotations

from typing import TextIO

from pymailsrv.config.settings import Settings


def postconf(
    settings: Settings, names: list[str], *, defaults: bool = False, non_default: bool = False,
    expand: bool = False, out: TextIO,
) -> int:
    status = 0
    if names:
        selected = names
    elif non_default:
        selected = sorted(settings.explicit())
    else:
        selected = settings.names()
    for name in selected:
        if name not in settings.names() and not settings.is_set(name):
            print(f"postconf: warning: {name}: unknown parameter", file=__import__("sys").stderr)
            status = 1
            continue
        if non_default and not settings.is_set(name):
            continue
        if defaults:
            value = Settings().raw(name) if name in settings.names() else ""
        else:
            value = settings.expanded(name) if expand else settings.raw(name)
        print(f"{name} = {value}".rstrip(" ") if value else f"{name} =", file=out)
    return status
