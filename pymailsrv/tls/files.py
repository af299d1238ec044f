"""Where the ACME state lives: ``$data_directory/acme`` (mode 0700), every file in it 0600.

``certificate.pem`` holds the private key followed by the chain (leaf first), as Postfix's chain
files do: one file, replaced by one rename, so a listener never loads a key with the wrong
certificate."""

from __future__ import annotations

import os

from pymailsrv.config.settings import Settings

CERTIFICATE = "certificate.pem"
ACCOUNT_KEY = "account-key.pem"
STATE = "state.json"


def acme_directory(settings: Settings) -> str:
    return os.path.join(settings.get_str("data_directory"), "acme")


def acme_enabled(settings: Settings) -> bool:
    return bool(settings.get_str("acme_directory_url"))


def issued_certificate(settings: Settings) -> str:
    """The ACME certificate file when ACME is on and a certificate was issued, else ""."""
    if not acme_enabled(settings):
        return ""
    path = os.path.join(acme_directory(settings), CERTIFICATE)
    return path if os.path.isfile(path) else ""
