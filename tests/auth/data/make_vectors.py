"""Regenerate vectors.json (run by hand, never at test time):

    python3 tests/auth/data/make_vectors.py > tests/auth/data/vectors.json

Sources: ``doveadm pw`` of Dovecot 2.3 (Debian dovecot-core) for every Dovecot scheme, Perl's
crypt() (glibc/libxcrypt crypt(3)) for the unprefixed PostfixAdmin crypt forms, and Python's
hashlib for PostfixAdmin's md5 / authlib forms (as its PHP code computes them)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys

PASSWORDS = ["secret", "pässwörd", "密码123", "p@ss w0rd!\"'\\"]
LONG = "a" * 72 + "bcdefghijklmnopqrstuvwxyz12"  # 99 bytes: bcrypt uses the first 72

SCHEMES = [
    "CRYPT", "DES-CRYPT", "MD5-CRYPT", "SHA256-CRYPT", "SHA512-CRYPT", "BLF-CRYPT", "MD5",
    "PBKDF2", "SHA", "SHA1", "SHA256", "SHA512", "SMD5", "SSHA", "SSHA256", "SSHA512", "PLAIN",
    "CLEAR", "CLEARTEXT", "PLAIN-MD5", "LDAP-MD5", "PLAIN-MD4", "CRAM-MD5", "HMAC-MD5",
    "SCRAM-SHA-1", "SCRAM-SHA-256",
]
SLOW = ["ARGON2I", "ARGON2ID"]  # 32-64 MiB each: one password only
VARIANTS = [  # (scheme, rounds)
    ("SHA512-CRYPT", 10000), ("SHA256-CRYPT", 1000), ("BLF-CRYPT", 6), ("PBKDF2", 1000),
    ("SHA512-CRYPT.B64", 0), ("SHA256-CRYPT.B64", 0), ("MD5-CRYPT.B64", 0), ("BLF-CRYPT.B64", 0),
    ("SSHA.HEX", 0), ("SSHA256.HEX", 0), ("SSHA512.HEX", 0), ("SMD5.HEX", 0), ("SHA.HEX", 0),
    ("SHA256.HEX", 0), ("SHA512.HEX", 0), ("PLAIN-MD5.B64", 0), ("LDAP-MD5.HEX", 0),
    ("CRAM-MD5.B64", 0), ("PLAIN-MD4.B64", 0), ("SSHA512.BASE64", 0),
]


def doveadm(scheme: str, password: str | bytes, rounds: int = 0) -> str:
    pw = password.encode() if isinstance(password, str) else password
    cmd = [b"doveadm", b"pw", b"-s", scheme.encode(), b"-p", pw]
    if rounds:
        cmd += [b"-r", str(rounds).encode()]
    return subprocess.run(cmd, check=True, capture_output=True).stdout.decode().strip()


def perl_crypt(password: str, salt: str) -> str:
    code = "binmode STDOUT; print crypt($ARGV[0], $ARGV[1])"
    out = subprocess.run([b"perl", b"-e", code.encode(), password.encode(), salt.encode()],
                         check=True, capture_output=True)
    return out.stdout.decode()


def main() -> None:
    out = []

    def add(scheme: str, password: str, value: str, source: str, **extra: object) -> None:
        out.append({"scheme": scheme, "password": password, "hash": value, "source": source, **extra})

    for scheme in SCHEMES:
        for pw in PASSWORDS:
            add(scheme, pw, doveadm(scheme, pw), f"doveadm pw -s {scheme}")
    for scheme in SLOW:
        add(scheme, "pässwörd", doveadm(scheme, "pässwörd"), f"doveadm pw -s {scheme}")
    for scheme, rounds in VARIANTS:
        pw = "pässwörd"
        src = f"doveadm pw -s {scheme}" + (f" -r {rounds}" if rounds else "")
        add(scheme, pw, doveadm(scheme, pw, rounds), src)
    for scheme in ("BLF-CRYPT", "CRYPT"):
        add(scheme, LONG, doveadm(scheme, LONG), f"doveadm pw -s {scheme} (99-byte password)",
            also=LONG[:72], wrong=LONG[:71])
    # a hash of the latin-1 bytes (a legacy client), checked with the text password
    for scheme in ("PLAIN-MD5", "SHA512-CRYPT"):
        add(scheme, "pässwörd", doveadm(scheme, "pässwörd".encode("latin-1")),
            f"doveadm pw -s {scheme} -p <latin-1 bytes>", latin1=True)
    # PostfixAdmin 3.3 pacrypt() forms
    for pw in PASSWORDS[:3]:
        raw = pw.encode()
        add("md5crypt", pw, perl_crypt(pw, "$1$c9809462"), "PostfixAdmin md5crypt (perl crypt $1$)")
        add("md5", pw, hashlib.md5(raw).hexdigest(), "PostfixAdmin md5 (PHP md5())")
        add("cleartext", pw, pw, "PostfixAdmin cleartext")
        add("mysql_encrypt", pw, perl_crypt(pw, "$6$"), "PostfixAdmin mysql_encrypt unsalted $6$$")
        add("mysql_encrypt", pw, perl_crypt(pw, "$6$Ab3dEf6hIj9lMn0p"), "mysql_encrypt $6$salt")
        add("php_crypt:MD5", pw, perl_crypt(pw, "$1$abcdefghijkl"), "php_crypt:MD5 (12-char salt)")
        add("php_crypt:BLOWFISH", pw, perl_crypt(pw, "$2y$05$abcdefghijklmnopqrstuu"), "php_crypt:BLOWFISH")
        add("php_crypt:BLOWFISH", pw, perl_crypt(pw, "$2a$05$abcdefghijklmnopqrstuu"), "BLOWFISH $2a$ (PHP < 5.3.7)")
        add("php_crypt:BLOWFISH", pw, perl_crypt(pw, "$2b$05$abcdefghijklmnopqrstuu"), "BLOWFISH $2b$ (OpenBSD)")
        add("php_crypt:SHA256", pw, "{SHA256-CRYPT}" + perl_crypt(pw, "$5$rounds=2000$abcdefghijklmnop"),
            "php_crypt:SHA256:2000:{SHA256-CRYPT}")
        add("php_crypt:DES", pw, perl_crypt(pw, "Xy"), "php_crypt:DES / system")
        add("authlib", pw, "{md5raw}" + hashlib.md5(raw).hexdigest(), "authlib md5raw")
        add("authlib", pw, "{md5}" + base64.b64encode(hashlib.md5(raw).digest()).decode(), "authlib md5")
        add("authlib", pw, "{SHA}" + base64.b64encode(hashlib.sha1(raw).digest()).decode(), "authlib SHA")
        add("authlib", pw, "{crypt}" + perl_crypt(pw, "qz"), "authlib crypt")
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
