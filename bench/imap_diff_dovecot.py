#!/usr/bin/env python3
"""Differential check of FETCH output against Dovecot: APPEND every message of a corpus to both
servers and compare ENVELOPE, BODYSTRUCTURE, BODY, RFC822.SIZE and a few sections (case-folded;
items compared one by one, so their order does not matter).

    bench/imap_diff_dovecot.py DOVECOT_PORT OUR_PORT [--user u59@bench.test] [FILES...]
"""

from __future__ import annotations

import argparse
import glob
import imaplib

ITEMS = ["ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.SIZE", "BODY.PEEK[1]", "BODY.PEEK[2]",
         "BODY.PEEK[1.MIME]", "BODY.PEEK[2.1]", "BODY.PEEK[2.HEADER]"]


def fetch_all(port: int, user: str, files: list[str]) -> list[dict[str, bytes]]:
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(user, "pw")
    try:
        c.delete("Difftest")
    except imaplib.IMAP4.error:
        pass
    c.create("Difftest")
    for f in files:
        with open(f, "rb") as fh:
            c.append("Difftest", None, None, fh.read())
    c.select("Difftest")
    out = []
    for i in range(1, len(files) + 1):
        got = {}
        for item in ITEMS:
            _typ, d = c.fetch(str(i), f"({item})")
            got[item] = b"".join(x if isinstance(x, bytes) else x[0] + x[1] for x in d)
        out.append(got)
    c.close()
    c.delete("Difftest")
    c.logout()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dovecot_port", type=int)
    ap.add_argument("our_port", type=int)
    ap.add_argument("--user", default="u59@bench.test")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    files = a.files or sorted(glob.glob("tests/imap/corpus/*.eml"))
    theirs, ours = fetch_all(a.dovecot_port, a.user, files), fetch_all(a.our_port, a.user, files)
    same = 0
    for f, t, o in zip(files, theirs, ours, strict=True):
        for item in ITEMS:
            if t[item].lower().replace(b"body.peek", b"body") == o[item].lower():
                same += 1
                continue
            print(f"DIFF {f} {item}\n  dovecot: {t[item][:400]!r}\n  ours:    {o[item][:400]!r}")
    print(f"{same}/{len(files) * len(ITEMS)} items identical (case-insensitive)")


if __name__ == "__main__":
    main()
