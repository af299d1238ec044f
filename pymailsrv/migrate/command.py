"""The ``import-config`` command: read, write the file, print the report. Exit status 0 when the
site can be served as it was, 2 when the report marks something (!!) to deal with first."""

from __future__ import annotations

import os
from typing import TextIO

from pymailsrv.errors import PymailsrvError
from pymailsrv.migrate import import_site


def run(postfix_dir: str | None, dovecot_dir: str | None, out_path: str | None, *, check: bool = True,
        out: TextIO, err: TextIO) -> int:
    if not postfix_dir and not dovecot_dir:
        raise PymailsrvError("import-config: give --postfix DIR, --dovecot DIR or both")
    for d in (postfix_dir, dovecot_dir):
        if d and not os.path.isdir(d):
            raise PymailsrvError(f"import-config: {d}: not a directory")
    result = import_site(postfix_dir, dovecot_dir, check=check)
    if out_path and out_path != "-":
        tmp = f"{out_path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(result.text)
        os.chmod(tmp, 0o600)  # database_url carries the database password
        os.replace(tmp, out_path)
        print(result.report.render(), end="", file=out)
        print(f"import-config: wrote {out_path}", file=out)
    else:
        print(result.text, end="", file=out)
        print(result.report.render(), end="", file=err)
    return 2 if result.report.blocking else 0
