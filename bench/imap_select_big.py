#!/usr/bin/env python3
"""Time SELECT (and UID FETCH 1:* (FLAGS)) of a big folder against a running server.

    bench/imap_select_big.py HOST PORT USER [--password pw] [--rounds 3]
Prefill the folder first (``bench/imap_load.py x 0 --prefill BASE --users 1 --first-user N
--per-user 100000`` for a Maildir, or ``bench/imap_serve.py --per-user 100000``).
"""

from __future__ import annotations

import argparse
import imaplib
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("user")
    ap.add_argument("--password", default="pw")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    for r in range(a.rounds):
        c = imaplib.IMAP4(a.host, a.port)
        c.login(a.user, a.password)
        t = time.perf_counter()
        _typ, data = c.select("INBOX")
        t_select = time.perf_counter() - t
        t = time.perf_counter()
        c.send(b"F1 UID FETCH 1:* (FLAGS)\r\n")  # raw: imaplib's own parsing would dominate
        n = 0
        while not c.readline().startswith(b"F1 "):
            n += 1
        t_flags = time.perf_counter() - t
        print(f"round {r}: SELECT {int(data[0])} messages in {t_select:.3f}s, "
              f"UID FETCH 1:* (FLAGS) {n} lines in {t_flags:.3f}s")
        c.logout()


if __name__ == "__main__":
    main()
