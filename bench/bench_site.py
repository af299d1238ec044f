#!/usr/bin/env python3
"""The site every benchmark serves: after ``db upgrade``, the domain bench.test with the
mailboxes u0..u99@bench.test (password ``pw``) in the database of CONF; with ``--valias FILE``
also the regexp map that folds smtp-source's ``<seq>u@bench.test`` onto u0..u99, as the Postfix
anchor does (the config names it in ``virtual_alias_maps``).

    PYTHONPATH=CHECKOUT python bench/bench_site.py CONF [--valias FILE]

PYTHONPATH picks the checkout whose pymailsrv creates them (a bench script may serve several).
"""

from __future__ import annotations

import argparse

from pymailsrv.cli import main

VALIAS = """/([1-9][0-9])u@bench\\.test$/    u$1@bench.test
/([0-9])u@bench\\.test$/         u$1@bench.test
"""


def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--valias", help="write the regexp alias map here")
    a = ap.parse_args()
    if a.valias:
        with open(a.valias, "w") as f:
            f.write(VALIAS)
    main(["--config", a.config, "db", "upgrade"])
    main(["--config", a.config, "domain", "add", "bench.test"])
    for i in range(100):
        main(["--config", a.config, "mailbox", "add", f"u{i}@bench.test", "--password", "pw"])


if __name__ == "__main__":
    run()
