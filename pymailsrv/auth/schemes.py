"""Password schemes: verify what PostfixAdmin 3.3 and Dovecot 2.3 store in ``mailbox.password``,
and write new hashes exactly as ``doveadm pw -s SCHEME`` does. Pure functions (CPU only).

Implementation notes (Dovecot 2.3 ``src/auth/password-scheme*.c`` behaviour, matched here):

* ``{SCHEME}data``: the scheme name is case-insensitive and may carry an encoding suffix
  ``.HEX``, ``.B64`` or ``.BASE64`` that says how ``data`` encodes the scheme's raw output
  (``{SHA512-CRYPT.B64}`` is base64 of a whole ``$6$…`` string, as PostfixAdmin's sha512.b64).
* No prefix: a value starting ``$1$`` is MD5-CRYPT whatever the default; anything else uses
  ``default_pass_scheme``. Dovecot's default CRYPT is crypt(3): the format is recognised by the
  string's own prefix (DES, ``_`` extended DES, ``$1$``, ``$5$``, ``$6$``, ``$2a/b/y$``); we also
  accept ``$argon2i$``/``$argon2id$`` there (Dovecot's libxcrypt would not; harmless superset).
* Fixed-length digests (SHA, PLAIN-MD5, CRAM-MD5 …) without an explicit suffix are hex when the
  text is exactly twice the raw length, else base64, as Dovecot guesses.
* ``MD5`` is MD5-CRYPT when the data starts ``$1$``, else PLAIN-MD5 (hex or base64), so
  PostfixAdmin's md5crypt and md5 and authlib's ``{md5}`` all work under one name.
* BLF-CRYPT uses only the first 72 bytes of the password, like crypt_blowfish in libxcrypt
  (checked with ``doveadm pw -t``); the bcrypt package refuses longer input, so we cut it.
* PostfixAdmin/authlib forms: ``{md5raw}`` hex MD5, ``{md5}`` base64 MD5, ``{SHA}`` base64 SHA-1,
  ``{crypt}`` DES; ``cleartext`` is unprefixed PLAIN, ``md5`` unprefixed PLAIN-MD5,
  ``md5crypt``/``mysql_encrypt``/``php_crypt`` unprefixed crypt (incl. the unsalted ``$6$$``).
* Passwords are checked as UTF-8 (surrogate escapes give back the client's raw bytes), then, if
  non-ASCII, as latin-1 bytes (legacy clients and hashes); a cleartext value is also compared as
  the latin-1 bytes of the stored text (PostfixAdmin on a latin1 column through a latin1 link).
* Every digest comparison is constant time (``hmac.compare_digest``). Garbage, unknown schemes and
  library errors mean "no match", never an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pymailsrv.auth import libcrypt
from pymailsrv.auth.digests import cram_md5_context, md4

log = logging.getLogger("pymailsrv.auth.schemes")

Encoding = Literal["none", "base64", "hex"]

MAX_PASSWORD_BYTES = 1024  # longer input is refused before any hashing (sha-crypt cost grows with it)
BCRYPT_MAX_BYTES = 72
DEFAULT_SCHEME = "SHA512-CRYPT"
SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class UnknownScheme(ValueError):
    """``hash_password`` was asked for a scheme it does not know (Dovecot: "Unknown scheme")."""


class InvalidRounds(ValueError):
    """``hash_password`` was given rounds its scheme does not take, or out of the scheme's range."""


# the rounds (-r) each scheme takes: crypt(3)'s ranges; PBKDF2 and SCRAM stop where verify stops
ROUNDS: dict[str, tuple[int, int]] = {
    "SHA256-CRYPT": (1000, 999_999_999),
    "SHA512-CRYPT": (1000, 999_999_999),
    "BLF-CRYPT": (4, 31),
    "CRYPT": (4, 31),
    "PBKDF2": (1, 10_000_000),
    "SCRAM-SHA-1": (1, 10_000_000),
    "SCRAM-SHA-256": (1, 10_000_000),
}


@dataclass(frozen=True, slots=True)
class Scheme:
    name: str
    encoding: Encoding  # how the stored data encodes the raw value when no suffix says otherwise
    raw_len: int  # fixed raw length in bytes; 0 = variable
    verify: Callable[[bytes, bytes], bool]  # (password bytes, raw stored value) -> match
    generate: Callable[[bytes, int], bytes] | None  # (password bytes, rounds or 0) -> raw value


# --- helpers -----------------------------------------------------------------------------------
def _eq(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _ascii(raw: bytes) -> str | None:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return None


def _salt_text(length: int) -> str:
    return "".join(secrets.choice(SALT_CHARS) for _ in range(length))


def _b64decode(text: str) -> bytes | None:
    text = text.strip()
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _unhex(text: str) -> bytes | None:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


# --- digest schemes ----------------------------------------------------------------------------
Pair = tuple[Callable[[bytes, bytes], bool], Callable[[bytes, int], bytes]]


def _digest(fn: Callable[[bytes], bytes]) -> Pair:
    def verify(pw: bytes, raw: bytes) -> bool:
        return _eq(fn(pw), raw)

    def generate(pw: bytes, rounds: int) -> bytes:
        return fn(pw)

    return verify, generate


def _salted(fn: Callable[[bytes], bytes], size: int) -> Pair:
    """SSHA, SSHA256, SSHA512, SMD5: ``digest(password + salt) + salt`` (Dovecot: 4-byte salt)."""

    def verify(pw: bytes, raw: bytes) -> bool:
        if len(raw) <= size:  # Dovecot: "password is too short" (no salt at all)
            return False
        return _eq(fn(pw + raw[size:]), raw[:size])

    def generate(pw: bytes, rounds: int) -> bytes:
        salt = secrets.token_bytes(4)
        return fn(pw + salt) + salt

    return verify, generate


def _h(name: str) -> Callable[[bytes], bytes]:
    return lambda data: hashlib.new(name, data).digest()


# --- crypt(3) family ---------------------------------------------------------------------------
def _bcrypt_secret(pw: bytes) -> bytes:
    return pw[:BCRYPT_MAX_BYTES]


def crypt_verify(pw: bytes, raw: bytes) -> bool:
    """Dovecot's CRYPT: any crypt(3) string, the algorithm taken from the string's own prefix."""
    from passlib.hash import bcrypt, bsdi_crypt, des_crypt, md5_crypt, sha256_crypt, sha512_crypt

    text = _ascii(raw)
    if not text:
        return False
    if text.startswith(("$1$", "$5$", "$6$")) and not text.startswith(("$5$$", "$6$$")):
        fast = libcrypt.verify(pw, text)
        if fast is not None:
            return fast
    if text.startswith(("$2a$", "$2b$", "$2y$")):
        return bool(bcrypt.verify(_bcrypt_secret(pw), text))
    if text.startswith("$1$"):
        return bool(md5_crypt.verify(pw, text))
    if text.startswith("$5$"):
        return bool(sha256_crypt.verify(pw, text))
    if text.startswith("$6$"):
        return bool(sha512_crypt.verify(pw, text))
    if text.startswith("$argon2"):
        return argon2_verify(pw, raw)
    if text.startswith("_") and len(text) == 20:
        return bool(bsdi_crypt.verify(pw, text))
    if len(text) == 13 and all(c in SALT_CHARS for c in text):
        return bool(des_crypt.verify(pw, text))
    return False


def _md5_crypt_verify(pw: bytes, raw: bytes) -> bool:
    """MD5-CRYPT accepts only ``$1$`` strings (Dovecot's own md5crypt)."""
    return raw.startswith(b"$1$") and crypt_verify(pw, raw)


def _gen_des(pw: bytes, rounds: int) -> bytes:
    from passlib.hash import des_crypt

    return str(des_crypt.using(salt=_salt_text(2)).hash(pw)).encode()


def _gen_md5_crypt(pw: bytes, rounds: int) -> bytes:
    from passlib.hash import md5_crypt

    return str(md5_crypt.using(salt=_salt_text(8)).hash(pw)).encode()


def _gen_sha_crypt(bits: int) -> Callable[[bytes, int], bytes]:
    def generate(pw: bytes, rounds: int) -> bytes:
        from passlib.hash import sha256_crypt, sha512_crypt

        handler = sha512_crypt if bits == 512 else sha256_crypt
        # doveadm: 5000 rounds by default, written without "rounds=" (the crypt(3) default)
        return str(handler.using(salt=_salt_text(16), rounds=rounds or 5000).hash(pw)).encode()

    return generate


def _gen_bcrypt(pw: bytes, rounds: int) -> bytes:
    from passlib.hash import bcrypt

    return str(bcrypt.using(ident="2y", rounds=rounds or 5).hash(_bcrypt_secret(pw))).encode()


# --- argon2 (libsodium's crypto_pwhash_str in Dovecot) -----------------------------------------
def argon2_verify(pw: bytes, raw: bytes) -> bool:
    from argon2 import Type
    from argon2.exceptions import VerificationError, VerifyMismatchError
    from argon2.low_level import verify_secret

    if raw.startswith(b"$argon2id$"):
        kind = Type.ID
    elif raw.startswith(b"$argon2i$"):
        kind = Type.I
    else:
        return False
    try:
        return bool(verify_secret(raw, pw, kind))
    except VerifyMismatchError:
        return False
    except VerificationError:  # malformed hash
        return False


def _gen_argon2(kind: str) -> Callable[[bytes, int], bytes]:
    def generate(pw: bytes, rounds: int) -> bytes:
        from argon2 import Type
        from argon2.low_level import hash_secret

        # doveadm pw -s ARGON2ID: m=65536,t=3,p=1; ARGON2I: m=32768,t=4,p=1; 16-byte salt, 32-byte hash
        if kind == "id":
            return hash_secret(pw, secrets.token_bytes(16), 3, 65536, 1, 32, Type.ID)
        return hash_secret(pw, secrets.token_bytes(16), 4, 32768, 1, 32, Type.I)

    return generate


# --- PBKDF2, SCRAM, PLAIN-TRUNC, MD5 -----------------------------------------------------------
def _pbkdf2_verify(pw: bytes, raw: bytes) -> bool:
    """Dovecot's PBKDF2: ``$1$<salt>$<rounds>$<hex of 20-byte PBKDF2-HMAC-SHA1>``."""
    text = _ascii(raw)
    if text is None or not text.startswith("$1$"):
        return False
    fields = text[3:].split("$")
    if len(fields) != 3 or not fields[1].isdigit() or len(fields[2]) != 40:
        return False
    expected = _unhex(fields[2])
    rounds = int(fields[1])
    if expected is None or not 0 < rounds <= 10_000_000:
        return False
    return _eq(hashlib.pbkdf2_hmac("sha1", pw, fields[0].encode(), rounds), expected)


def _pbkdf2_generate(pw: bytes, rounds: int) -> bytes:
    rounds = rounds or 5000
    salt = _salt_text(16)
    key = hashlib.pbkdf2_hmac("sha1", pw, salt.encode(), rounds)
    return f"$1${salt}${rounds}${key.hex()}".encode()


def _scram(hash_name: str) -> Pair:
    """SCRAM-SHA-1/-256 stored keys (RFC 5802 §3): ``iter,salt,StoredKey,ServerKey`` in base64."""

    def keys(pw: bytes, salt: bytes, rounds: int) -> tuple[bytes, bytes]:
        salted = hashlib.pbkdf2_hmac(hash_name, pw, salt, rounds)
        client_key = hmac.new(salted, b"Client Key", hash_name).digest()
        server_key = hmac.new(salted, b"Server Key", hash_name).digest()
        return hashlib.new(hash_name, client_key).digest(), server_key

    def verify(pw: bytes, raw: bytes) -> bool:
        fields = (_ascii(raw) or "").split(",")
        if len(fields) != 4 or not fields[0].isdigit() or not 0 < int(fields[0]) <= 10_000_000:
            return False
        salt, stored = _b64decode(fields[1]), _b64decode(fields[2])
        if salt is None or stored is None:
            return False
        return _eq(keys(pw, salt, int(fields[0]))[0], stored)

    def generate(pw: bytes, rounds: int) -> bytes:
        rounds = rounds or 4096
        salt = secrets.token_bytes(16)
        stored, server = keys(pw, salt, rounds)
        parts = [base64.b64encode(v).decode() for v in (salt, stored, server)]
        return f"{rounds},{','.join(parts)}".encode()

    return verify, generate


def _plain_trunc_verify(pw: bytes, raw: bytes) -> bool:
    """PLAIN-TRUNC ``<length>-<password>``: the password as stored, cut to <length> bytes."""
    length, sep, stored = raw.partition(b"-")
    if not sep or not length.isdigit():
        return False
    return _eq(pw[: int(length)], stored)


def _md5_verify(pw: bytes, raw: bytes) -> bool:
    """Dovecot's ``MD5``: MD5-CRYPT for ``$1$`` data, else PLAIN-MD5 in hex or base64."""
    if raw.startswith(b"$1$"):
        return crypt_verify(pw, raw)
    text = _ascii(raw)
    digest = _decode(text, "hex", 16, guessed=True) if text is not None else None
    return digest is not None and _eq(hashlib.md5(pw).digest(), digest)


def _plain_verify(pw: bytes, raw: bytes) -> bool:
    return _eq(pw, raw)


def _plain_generate(pw: bytes, rounds: int) -> bytes:
    return pw


def _build() -> dict[str, Scheme]:
    sha1, sha256, sha512, md5 = _h("sha1"), _h("sha256"), _h("sha512"), _h("md5")
    plain = (_plain_verify, _plain_generate)
    table = [
        Scheme("CRYPT", "none", 0, crypt_verify, _gen_bcrypt),  # doveadm 2.3.19: bcrypt
        Scheme("DES-CRYPT", "none", 0, crypt_verify, _gen_des),
        Scheme("MD5-CRYPT", "none", 0, _md5_crypt_verify, _gen_md5_crypt),
        Scheme("SHA256-CRYPT", "none", 0, crypt_verify, _gen_sha_crypt(256)),
        Scheme("SHA512-CRYPT", "none", 0, crypt_verify, _gen_sha_crypt(512)),
        Scheme("BLF-CRYPT", "none", 0, crypt_verify, _gen_bcrypt),
        Scheme("ARGON2I", "none", 0, argon2_verify, _gen_argon2("i")),
        Scheme("ARGON2ID", "none", 0, argon2_verify, _gen_argon2("id")),
        Scheme("PBKDF2", "none", 0, _pbkdf2_verify, _pbkdf2_generate),
        Scheme("MD5", "none", 0, _md5_verify, _gen_md5_crypt),
        Scheme("SHA", "base64", 20, *_digest(sha1)),
        Scheme("SHA1", "base64", 20, *_digest(sha1)),
        Scheme("SHA256", "base64", 32, *_digest(sha256)),
        Scheme("SHA512", "base64", 64, *_digest(sha512)),
        Scheme("SMD5", "base64", 0, *_salted(md5, 16)),
        Scheme("SSHA", "base64", 0, *_salted(sha1, 20)),
        Scheme("SSHA256", "base64", 0, *_salted(sha256, 32)),
        Scheme("SSHA512", "base64", 0, *_salted(sha512, 64)),
        Scheme("PLAIN", "none", 0, *plain),
        Scheme("CLEAR", "none", 0, *plain),
        Scheme("CLEARTEXT", "none", 0, *plain),
        Scheme("PLAIN-TRUNC", "none", 0, _plain_trunc_verify, None),
        Scheme("PLAIN-MD5", "hex", 16, *_digest(md5)),
        Scheme("LDAP-MD5", "base64", 16, *_digest(md5)),
        Scheme("PLAIN-MD4", "hex", 16, *_digest(md4)),
        Scheme("CRAM-MD5", "hex", 32, *_digest(cram_md5_context)),
        Scheme("HMAC-MD5", "hex", 32, *_digest(cram_md5_context)),
        Scheme("SCRAM-SHA-1", "none", 0, *_scram("sha1")),
        Scheme("SCRAM-SHA-256", "none", 0, *_scram("sha256")),
        # courier-authlib flavours written by PostfixAdmin's encrypt = authlib (not Dovecot names)
        Scheme("MD5RAW", "hex", 16, _digest(md5)[0], None),
    ]
    return {s.name: s for s in table}


SCHEMES: dict[str, Scheme] = _build()
_SUFFIXES: dict[str, Encoding] = {"HEX": "hex", "B64": "base64", "BASE64": "base64"}


# --- parsing -----------------------------------------------------------------------------------
def split_scheme(stored: str) -> tuple[str | None, str]:
    """``{SCHEME}data`` → (SCHEME, data); ``$1$…`` → MD5-CRYPT; else (None, stored)."""
    if stored.startswith("$1$"):
        # Dovecot: "$1$<salt>$<hash>[$<ignored>]" — anything after a third "$" is dropped
        salt_end = stored.find("$", 3)
        extra = stored.find("$", salt_end + 1) if salt_end >= 0 else -1
        return "MD5-CRYPT", stored[:extra] if extra >= 0 else stored
    if stored.startswith("{"):
        end = stored.find("}")
        if end > 0:
            return stored[1:end], stored[end + 1 :]
    return None, stored


def lookup(name: str) -> tuple[Scheme, Encoding, bool] | None:
    """A scheme name with an optional ``.HEX``/``.B64`` suffix → (scheme, encoding, explicit)."""
    base, dot, suffix = name.strip().upper().partition(".")
    scheme = SCHEMES.get(base)
    if scheme is None:
        return None
    if not dot:
        return scheme, scheme.encoding, False
    encoding = _SUFFIXES.get(suffix)
    if encoding is None:
        return None  # Dovecot: an unknown encoding makes the scheme invalid
    return scheme, encoding, True


def _decode(data: str, encoding: Encoding, raw_len: int, *, guessed: bool) -> bytes | None:
    """The raw value, following Dovecot's ``password_decode``: fixed-length schemes without an
    explicit suffix are hex when the text is exactly twice the raw length, else base64."""
    if encoding != "none" and raw_len and guessed:
        encoding = "hex" if len(data) == raw_len * 2 else "base64"
    if encoding == "none":
        return data.encode("utf-8", "surrogateescape")
    raw = _unhex(data) if encoding == "hex" else None
    if raw is None and (encoding == "base64" or guessed):
        raw = _b64decode(data)
    if raw is None or (raw_len and len(raw) != raw_len):
        return None
    return raw


def _stored_candidates(data: str, scheme: Scheme, encoding: Encoding, explicit: bool) -> list[bytes]:
    raw = _decode(data, encoding, scheme.raw_len, guessed=not explicit)
    if raw is None:
        return []
    candidates = [raw]
    if encoding == "none" and scheme.name in ("PLAIN", "CLEAR", "CLEARTEXT") and not data.isascii():
        try:
            candidates.append(data.encode("latin-1"))
        except UnicodeEncodeError:
            pass
    return candidates


def password_candidates(password: str) -> list[bytes]:
    """UTF-8 (raw client bytes kept by surrogate escapes), then latin-1 when that differs."""
    first = password.encode("utf-8", "surrogateescape")
    result = [first]
    try:
        legacy = password.encode("latin-1")
    except UnicodeEncodeError:
        return result
    if legacy != first:
        result.append(legacy)
    return result


# --- public API --------------------------------------------------------------------------------
def verify_password(password: str, stored: str, default_scheme: str = "CRYPT") -> bool:
    """Does ``password`` match the stored value (``{SCHEME}data`` or unprefixed, read with
    ``default_scheme``)? False for a wrong password, an unknown scheme, malformed data, an empty
    stored value or password, a password containing NUL or longer than MAX_PASSWORD_BYTES. CPU-bound: call it
    through ``asyncio.to_thread`` from the event loop."""
    try:
        return _verify(password, stored, default_scheme)
    except Exception:  # garbage from the database must never escape as an error
        log.debug("password check failed on malformed stored data", exc_info=True)
        return False


def _verify(password: str, stored: str, default_scheme: str) -> bool:
    if not stored or not password or "\0" in password:
        return False
    name, data = split_scheme(stored)
    if not data:
        return False
    found = lookup(name if name is not None else default_scheme)
    if found is None:
        log.debug("unknown password scheme %r", name or default_scheme)
        return False
    scheme, encoding, explicit = found
    candidates = _stored_candidates(data, scheme, encoding, explicit)
    if not candidates:
        return False
    for pw in password_candidates(password):
        if len(pw) > MAX_PASSWORD_BYTES:
            return False
        for raw in candidates:
            if scheme.verify(pw, raw):
                return True
    return False


def hash_password(password: str, scheme: str = DEFAULT_SCHEME, *, rounds: int = 0) -> str:
    """A new ``{SCHEME}`` value as ``doveadm pw -s SCHEME [-r rounds]`` writes it (random salts;
    the default rounds and salt sizes of Dovecot 2.3). Raises UnknownScheme, InvalidRounds."""
    found = lookup(scheme)
    if found is None or found[0].generate is None:
        raise UnknownScheme(f"Unknown scheme: {scheme}")
    spec, encoding, _ = found
    if rounds:
        low, high = ROUNDS.get(spec.name, (0, 0))
        if not low <= rounds <= high:
            allowed = f"from {low} to {high}" if high else "none"
            raise InvalidRounds(f"Invalid rounds {rounds} for {spec.name} (allowed: {allowed})")
    generate = spec.generate
    assert generate is not None
    raw = generate(password.encode("utf-8", "surrogateescape"), rounds)
    if encoding == "hex":
        data = raw.hex()
    elif encoding == "base64":
        data = base64.b64encode(raw).decode("ascii")
    else:
        data = raw.decode("utf-8", "surrogateescape")
    return f"{{{scheme.strip().upper()}}}{data}"


def identify(stored: str, default_scheme: str = "CRYPT") -> str | None:
    """The scheme name a stored value would be checked with (for ``pw verify`` output), or None."""
    name, _ = split_scheme(stored)
    name = name if name is not None else default_scheme
    return name.upper() if lookup(name) is not None else None
