"""The ACME client's files under ``$data_directory/acme`` (pymailsrv/tls/files.py names them).

Every file is written atomically: a temporary file in the same directory, written and fsynced,
then renamed over the old one and the directory fsynced. A reload that reads the certificate
meanwhile gets the old file or the new one, never half of one. Mode 0600, directory 0700.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from josepy.jwk import JWKRSA

from pymailsrv.durable import fsync_dir, write_new
from pymailsrv.tls.certinfo import CertificateInfo, certificate_info
from pymailsrv.tls.files import ACCOUNT_KEY, CERTIFICATE, STATE

REVOKED_SUFFIX = ".revoked"


@dataclass(slots=True)
class AcmeState:
    """What the renewal schedule needs to survive a restart (epoch seconds; 0 = never)."""

    failures: int = 0  # failed attempts since the last success
    last_attempt: float = 0.0
    last_success: float = 0.0
    last_error: str = ""
    next_attempt: float = 0.0  # as computed after the last attempt (for ``cert status``)


class AcmeStore:
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def ensure_directory(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        os.chmod(self.directory, 0o700)

    def write(self, name: str, data: bytes) -> None:
        """Replace the file ``name`` atomically and durably (mode 0600)."""
        self.ensure_directory()
        final = self.path(name)
        tmp = f"{final}.tmp.{os.getpid()}"
        try:
            os.unlink(tmp)  # left by a crash of this pid's predecessor
        except FileNotFoundError:
            pass
        fd = write_new(tmp, data, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(self.directory)

    # --- the account key ---------------------------------------------------------------------
    def account_key(self) -> JWKRSA:
        """The account's key, created on first use (RSA 2048, RS256: what every CA accepts)."""
        try:
            with open(self.path(ACCOUNT_KEY), "rb") as fh:
                pem = fh.read()
        except FileNotFoundError:
            pem = new_private_key_pem()
            self.write(ACCOUNT_KEY, pem)
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return JWKRSA(key=key)

    # --- the certificate ---------------------------------------------------------------------
    def certificate_pem(self) -> bytes | None:
        try:
            with open(self.path(CERTIFICATE), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def certificate(self) -> CertificateInfo | None:
        pem = self.certificate_pem()
        if pem is None:
            return None
        try:
            return certificate_info(pem)
        except ValueError:
            return None

    def install(self, key_pem: bytes, fullchain_pem: bytes) -> CertificateInfo:
        """Make the key and chain the certificate the listeners load from their next reload."""
        info = certificate_info(fullchain_pem)
        self.write(CERTIFICATE, key_pem + fullchain_pem)
        return info

    def set_aside(self) -> None:
        """Move the certificate out of the listeners' way (after revoking it)."""
        os.replace(self.path(CERTIFICATE), self.path(CERTIFICATE + REVOKED_SUFFIX))
        fsync_dir(self.directory)

    # --- the schedule --------------------------------------------------------------------------
    def state(self) -> AcmeState:
        try:
            with open(self.path(STATE), encoding="utf-8") as fh:
                data = json.load(fh)
            known = {f.name for f in fields(AcmeState)}
            return AcmeState(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError):
            return AcmeState()

    def save_state(self, state: AcmeState) -> None:
        self.write(STATE, json.dumps(asdict(state), indent=1).encode("utf-8") + b"\n")


def new_private_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
