"""``pymailsrv postmap -q KEY type:name``: query one lookup table, as Postfix's postmap -q does.

Prints the value and exits 0; exits 1 when the key is not found; 2 on a table error."""

from __future__ import annotations

import sys
from typing import TextIO

from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError, TemporaryFailure
from pymailsrv.policy.tables import close_table, open_table


async def postmap(settings: Settings, key: str, table_spec: str, out: TextIO) -> int:
    try:
        table = open_table(table_spec, settings)
    except ConfigError as exc:
        print(f"postmap: fatal: {exc}", file=sys.stderr)
        return 2
    try:
        value = await table.get(key)
    except TemporaryFailure as exc:
        print(f"postmap: fatal: table {table_spec}: query error: {exc}", file=sys.stderr)
        return 2
    finally:
        await close_table(table)
    if value is None:
        return 1
    print(value, file=out)
    return 0
