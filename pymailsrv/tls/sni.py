"""tls_server_sni_maps: a certificate per name a client asks for by SNI (RFC 6066 §3), as Postfix.

Implementation notes:
- OpenSSL asks for the certificate inside the handshake, synchronously, so the tables are read
  whole when a listener's context is built (at start and on every reload), not looked up then.
  That limits them to tables that can be read whole: texthash/hash (the text source) and inline.
- A value is a list of files, each holding a private key followed by its chain (Postfix's chain
  files); several files give one name an RSA and an ECDSA certificate.
- Keys are tried as Postfix's SNI callback does: the name, then ``.parent`` for each parent
  domain. A name found nowhere keeps the listener's default certificate.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable

from pymailsrv.config.parser import split_list
from pymailsrv.config.tls import load_chain, server_context
from pymailsrv.errors import ConfigError
from pymailsrv.policy.access import domain_keys
from pymailsrv.policy.tables import TEXT_TYPES, split_spec
from pymailsrv.policy.tables.simple import parse_inline
from pymailsrv.policy.tables.text import parse_hash

PARAM = "tls_server_sni_maps"


class SniMap:
    """Name → SSLContext; ``callback`` is an ``SSLContext.sni_callback``."""

    def __init__(self, contexts: dict[str, ssl.SSLContext]) -> None:
        self._contexts = contexts

    def select(self, name: str | None) -> ssl.SSLContext | None:
        if not name:
            return None
        for key in domain_keys(name, parent_style=False):
            if key in self._contexts:
                return self._contexts[key]
        return None

    def callback(self, conn: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
        chosen = self.select(name)
        if chosen is not None:
            conn.context = chosen


def load_sni_maps(specs: list[str], make_context: Callable[[list[str]], ssl.SSLContext] | None = None,
                  ) -> SniMap | None:
    """The SniMap of the tables in ``specs`` (the first table naming a key wins, as Postfix's
    table lists); None when there are none. Raises ConfigError naming the table or the file."""
    if not specs:
        return None
    build = make_context or chain_files_context
    entries: dict[str, list[str]] = {}
    for spec in specs:
        for key, files in read_table(spec).items():
            entries.setdefault(key, files)
    built: dict[tuple[str, ...], ssl.SSLContext] = {}  # names sharing files share a context
    contexts: dict[str, ssl.SSLContext] = {}
    for key, files in entries.items():
        if tuple(files) not in built:
            built[tuple(files)] = build(files)
        contexts[key] = built[tuple(files)]
    return SniMap(contexts)


def read_table(spec: str) -> dict[str, list[str]]:
    """A table's keys (case-folded, without a trailing dot) and the files each names; relative
    file names are relative to the table's directory."""
    kind, name = split_spec(spec)
    if kind in TEXT_TYPES:
        try:
            with open(name, encoding="utf-8") as fh:
                raw = parse_hash(fh.read(), name)
        except OSError as exc:
            raise ConfigError(f"{PARAM}: cannot open table {name}: {exc.strerror}") from None
        base = os.path.dirname(name)
    elif kind == "inline":
        raw, base = parse_inline(name), ""
    else:
        raise ConfigError(f'{PARAM}: "{spec}": only texthash:, hash: and inline: tables can be read whole '
                          "(a certificate is chosen inside the TLS handshake)")
    table: dict[str, list[str]] = {}
    for key, value in raw.items():
        files = [os.path.join(base, f) for f in split_list(value)]
        if not files:
            raise ConfigError(f'{PARAM}: {spec}: "{key}" names no file')
        table[key.rstrip(".")] = files
    return table


def chain_files_context(files: list[str]) -> ssl.SSLContext:
    """A server context serving the key and chain of each file."""
    ctx = server_context(files[0], "")
    for extra in files[1:]:
        load_chain(ctx, extra)
    return ctx
