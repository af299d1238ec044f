"""What ``hash_password`` writes, Dovecot accepts: each new hash is checked with the installed
``doveadm pw -t`` (skipped where Dovecot is not installed). Known-answer vectors in the other
direction live in data/vectors.json."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pymailsrv.auth.schemes import hash_password

DOVEADM = shutil.which("doveadm")
pytestmark = pytest.mark.skipif(DOVEADM is None, reason="doveadm (dovecot-core) not installed")

SCHEMES = [
    "SHA512-CRYPT", "SHA256-CRYPT", "MD5-CRYPT", "DES-CRYPT", "BLF-CRYPT", "CRYPT", "MD5", "PBKDF2",
    "SHA", "SHA1", "SHA256", "SHA512", "SMD5", "SSHA", "SSHA256", "SSHA512", "PLAIN", "CLEAR",
    "CLEARTEXT", "PLAIN-MD5", "LDAP-MD5", "PLAIN-MD4", "CRAM-MD5", "HMAC-MD5", "SCRAM-SHA-1",
    "SCRAM-SHA-256", "ARGON2ID", "SHA512-CRYPT.B64", "SSHA.HEX", "PLAIN-MD5.B64", "SHA256.HEX",
]


def doveadm_accepts(stored: str, password: str) -> bool:
    assert DOVEADM is not None
    result = subprocess.run([DOVEADM, "pw", "-t", stored, "-p", password], capture_output=True, timeout=30)
    return result.returncode == 0 and b"(verified)" in result.stdout


@pytest.mark.parametrize("scheme", SCHEMES)
def test_doveadm_verifies_our_hashes(scheme: str) -> None:
    password = "pässwörd 密码"
    stored = hash_password(password, scheme)
    assert doveadm_accepts(stored, password)


@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "SSHA512", "CRAM-MD5"])
def test_doveadm_refuses_a_wrong_password(scheme: str) -> None:
    assert not doveadm_accepts(hash_password("pässwörd", scheme), "Xässwörd")


def test_doveadm_verifies_rounds() -> None:
    assert doveadm_accepts(hash_password("x", "SHA512-CRYPT", rounds=12000), "x")
    assert doveadm_accepts(hash_password("x", "BLF-CRYPT", rounds=7), "x")
    assert doveadm_accepts(hash_password("x", "PBKDF2", rounds=1234), "x")
