"""``pymailsrv dkim keygen|check``: make a signing key and print the DNS record to publish (as
opendkim-genkey does), and check that DNS publishes the key of each configured selector."""

from __future__ import annotations

import argparse
import os
from typing import Literal, TextIO

from pymailsrv.errors import PymailsrvError, TemporaryFailure
from pymailsrv.senderauth import keys
from pymailsrv.senderauth.dkim import signature_tags
from pymailsrv.senderauth.dnslookup import Lookup

DEFAULT_SELECTORS = {"rsa": "default", "ed25519": "ed25519"}


def keygen(args: argparse.Namespace, key_directory: str, out: TextIO) -> int:
    """Write DIR/DOMAIN/SELECTOR.private (0600) and print the TXT record and the table lines."""
    domain = args.domain.lower().rstrip(".")
    algorithm: Literal["rsa", "ed25519"] = args.algorithm
    selector = args.selector or DEFAULT_SELECTORS[algorithm]
    directory = os.path.abspath(os.path.join(args.directory or key_directory, domain))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, f"{selector}.private")
    try:
        public = keys.generate(algorithm, path, bits=args.bits)
    except FileExistsError:
        raise PymailsrvError(f"{path} exists; choose another --selector") from None
    name = f"{selector}._domainkey.{domain}"
    print(f"; private key: {path}", file=out)
    print(f"; dkim_key_table line:     {name} {domain}:{selector}:{path}", file=out)
    print(f"; dkim_signing_table line: *@{domain} {name}   (refile:)", file=out)
    print(keys.txt_record(selector, domain, algorithm, public), file=out)
    return 0


async def check(domain: str, table: keys.SigningTable, lookup: Lookup, out: TextIO) -> int:
    """0 when DNS publishes the public key of every key that signs for ``domain``, else 1."""
    domain = domain.lower().rstrip(".")
    wanted = {(k.selector, k.algorithm): k for k in table.keys_for(f"postmaster@{domain}") if k.domain == domain}
    if not wanted:
        raise PymailsrvError(f"no key in dkim_signing_table signs for {domain}")
    failed = 0
    for (selector, algorithm), key in sorted(wanted.items()):
        name = f"{selector}._domainkey.{domain}"
        expected = keys.public_value(key)
        try:
            records = await lookup(name, "TXT")
        except TemporaryFailure as exc:
            print(f"{name}: DNS lookup failed ({exc}); try again", file=out)
            failed += 1
            continue
        published = [signature_tags(r.encode()).get("p", "") for r in records]
        if expected in published:
            print(f"{name}: ok ({algorithm})", file=out)
            continue
        failed += 1
        print(f"{name}: {'does not match the key' if records else 'not published'}; publish:", file=out)
        print(keys.txt_record(selector, domain, algorithm, expected), file=out)
    return 1 if failed else 0
