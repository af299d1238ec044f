"""Password schemes against known answers generated with doveadm pw, crypt(3) and hashlib
(tests/auth/data/vectors.json, made by make_vectors.py; nothing is generated at test time)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymailsrv.auth import schemes
from pymailsrv.auth.digests import cram_md5_context, md4
from pymailsrv.auth.schemes import UnknownScheme, hash_password, identify, verify_password

DATA = Path(__file__).parent / "data"
VECTORS: list[dict[str, Any]] = json.loads((DATA / "vectors.json").read_text("utf-8"))
FAST = [v for v in VECTORS if not v["scheme"].startswith("ARGON2")]
ARGON = [v for v in VECTORS if v["scheme"].startswith("ARGON2")]
# default_pass_scheme a Dovecot admin sets for PostfixAdmin's unprefixed forms (its docs' mapping)
PFA_DEFAULT = {"md5": "PLAIN-MD5", "cleartext": "PLAIN", "md5crypt": "MD5-CRYPT"}


def _id(v: dict[str, Any]) -> str:
    return f"{v['scheme']}:{v['source']}:{v['password'][:12]}"


def _wrong(password: str) -> str:
    # change the first character: DES reads 8 bytes and bcrypt 72, so appending would still match
    return ("X" if password[0] != "X" else "Y") + password[1:]


def _default(v: dict[str, Any]) -> str:
    return PFA_DEFAULT.get(v["scheme"], "CRYPT")


@pytest.mark.parametrize("v", FAST, ids=_id)
def test_vector_right_and_wrong(v: dict[str, Any]) -> None:
    assert verify_password(v["password"], v["hash"], _default(v))
    assert not verify_password(_wrong(v["password"]), v["hash"], _default(v))
    assert not verify_password("", v["hash"], _default(v))
    if "also" in v:
        assert verify_password(v["also"], v["hash"])
    if "wrong" in v:
        assert not verify_password(v["wrong"], v["hash"])


@pytest.mark.parametrize("v", [v for v in FAST if v["hash"].startswith("{")], ids=_id)
def test_vector_without_prefix_uses_default_scheme(v: dict[str, Any]) -> None:
    name, data = schemes.split_scheme(v["hash"])
    assert name is not None
    if data.startswith("$1$") and name.startswith("PBKDF2"):
        # Dovecot reads any unprefixed "$1$" value as MD5-CRYPT, so PBKDF2 needs its prefix
        assert not verify_password(v["password"], data, name)
        return
    assert verify_password(v["password"], data, name)
    assert verify_password(v["password"], data, name.lower())
    assert not verify_password(_wrong(v["password"]), data, name)


@pytest.mark.parametrize("v", ARGON, ids=_id)
def test_argon2(v: dict[str, Any]) -> None:
    assert verify_password(v["password"], v["hash"])
    assert not verify_password(_wrong(v["password"]), v["hash"])
    # unprefixed under the default CRYPT (a superset of Dovecot's libxcrypt)
    assert verify_password(v["password"], schemes.split_scheme(v["hash"])[1])


CRYPT_FORMS = [v for v in FAST if v["scheme"] in
               ("DES-CRYPT", "MD5-CRYPT", "SHA256-CRYPT", "SHA512-CRYPT", "BLF-CRYPT", "CRYPT")
               and "." not in v["scheme"] and "latin1" not in v]


@pytest.mark.parametrize("v", CRYPT_FORMS, ids=_id)
def test_unprefixed_crypt_strings_under_default_crypt(v: dict[str, Any]) -> None:
    data = schemes.split_scheme(v["hash"])[1]
    assert verify_password(v["password"], data)  # default_pass_scheme = CRYPT
    assert verify_password(v["password"], "{CRYPT}" + data)
    assert not verify_password(_wrong(v["password"]), data)


def test_unprefixed_md5_crypt_is_md5_crypt_whatever_the_default() -> None:
    v = next(v for v in VECTORS if v["scheme"] == "md5crypt")
    assert verify_password(v["password"], v["hash"], "PLAIN")
    assert verify_password(v["password"], v["hash"], "PLAIN-MD5")


def test_unprefixed_md5_crypt_ignores_a_trailing_field_like_dovecot() -> None:
    v = next(v for v in VECTORS if v["scheme"] == "md5crypt")
    assert verify_password(v["password"], v["hash"] + "$ignored")
    assert schemes.split_scheme("$1$salt$hash$x$y") == ("MD5-CRYPT", "$1$salt$hash")
    assert schemes.split_scheme("$1$salt") == ("MD5-CRYPT", "$1$salt")


def test_postfixadmin_md5_under_dovecot_md5_scheme() -> None:
    # Dovecot's MD5 = MD5-CRYPT for $1$ data, else PLAIN-MD5
    v = next(v for v in VECTORS if v["scheme"] == "md5")
    assert verify_password(v["password"], v["hash"], "MD5")
    assert verify_password(v["password"], "{MD5}" + v["hash"])


def test_bcrypt_uses_72_bytes_like_dovecot() -> None:
    long = "é" * 40  # 80 bytes in UTF-8
    stored = hash_password(long, "BLF-CRYPT")
    assert verify_password(long, stored)
    assert verify_password(long.encode()[:72].decode(), stored)
    assert not verify_password(long[:35], stored)


def test_latin1_fallbacks() -> None:
    # hash over latin-1 bytes (vectors marked latin1), and cleartext read back as mojibake
    for v in (v for v in VECTORS if v.get("latin1")):
        assert verify_password("pässwörd", v["hash"])
        assert not verify_password("passwörd", v["hash"])
    mojibake = "pässwörd".encode().decode("latin-1")
    assert verify_password("pässwörd", "{PLAIN}" + mojibake)
    assert verify_password("pässwörd", "{PLAIN}pässwörd")
    # raw client bytes that are not UTF-8, kept by surrogateescape
    raw = b"p\xe4ss"
    stored = "{PLAIN-MD5}" + hashlib.md5(raw).hexdigest()
    assert verify_password(raw.decode("utf-8", "surrogateescape"), stored)
    assert verify_password(raw.decode("latin-1"), stored)


GARBAGE = [
    "", "{", "}", "{}", "{}x", "{SHA512-CRYPT}", "{SHA512-CRYPT}$6$", "{SHA512-CRYPT}$6$rounds=x$ab$cd",
    "{BLF-CRYPT}$2y$05$short", "{BLF-CRYPT}$2y$99$abcdefghijklmnopqrstuuqflPDzB6gcMhKa1rZqKiun2YGL5sa2u",
    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$bad", "{ARGON2I}$argon2id$garbage", "{PBKDF2}$1$salt$x$00",
    "{PBKDF2}$1$salt$5000$zz", "{PBKDF2}$2$a$1$" + "0" * 40, "{PBKDF2}$1$a$0$" + "0" * 40, "{SSHA}AAAA",
    "{SSHA}!!!!", "{SHA}not base64!", "{SHA.HEX}abc", "{PLAIN-MD5}0123", "{CRAM-MD5}00",
    "{SCRAM-SHA-1}x,y,z,w", "{SCRAM-SHA-1}0,AA==,AA==,AA==", "{FOO}bar", "{SHA.ROT13}abc",
    "{PLAIN-TRUNC}x-abc", "{DIGEST-MD5}00", "$6$", "$5$$", "$2y$", "_short", "{crypt}é" * 3,
    "{SHA512-CRYPT.B64}!!!", "{SHA512-CRYPT.B64}" + base64.b64encode(b"\xff\xfe").decode(),
    "\0", "{PLAIN}\udcff", "{MD5}$1$", "{MD5}zz", "{SMD5.HEX}00", "{SHA512-CRYPT}$6$rounds=999999999999$a$b",
]


@pytest.mark.parametrize("stored", GARBAGE)
@pytest.mark.parametrize("default", ["CRYPT", "PLAIN-MD5", "NOSUCH", "SHA.XX"])
def test_garbage_is_false_never_an_exception(stored: str, default: str) -> None:
    assert verify_password("secret", stored, default) is False
    assert verify_password("", stored, default) is False


def test_password_edge_cases() -> None:
    assert not verify_password("sec\0ret", "{PLAIN}sec\0ret")
    big = "x" * (schemes.MAX_PASSWORD_BYTES + 1)
    assert not verify_password(big, "{PLAIN}" + big)
    ok = "x" * schemes.MAX_PASSWORD_BYTES
    assert verify_password(ok, "{PLAIN}" + ok)
    assert not verify_password("", "{PLAIN}")
    assert verify_password("abcdefgh", "{PLAIN-TRUNC}5-abcde")
    assert not verify_password("abcdx", "{PLAIN-TRUNC}5-abcde")


@pytest.mark.parametrize("scheme", [
    "SHA512-CRYPT", "SHA256-CRYPT", "MD5-CRYPT", "DES-CRYPT", "BLF-CRYPT", "CRYPT", "MD5", "PBKDF2",
    "SHA", "SHA1", "SHA256", "SHA512", "SMD5", "SSHA", "SSHA256", "SSHA512", "PLAIN", "CLEAR",
    "CLEARTEXT", "PLAIN-MD5", "LDAP-MD5", "PLAIN-MD4", "CRAM-MD5", "HMAC-MD5", "SCRAM-SHA-1",
    "SCRAM-SHA-256", "SHA512-CRYPT.B64", "SSHA.HEX", "PLAIN-MD5.B64", "sha512-crypt",
])
@pytest.mark.parametrize("password", ["secret", "pässwörd", "密码123"])
def test_hash_password_round_trip(scheme: str, password: str) -> None:
    stored = hash_password(password, scheme)
    assert stored.startswith("{" + scheme.upper() + "}")
    assert verify_password(password, stored)
    if scheme != "DES-CRYPT" or len(password.encode()) <= 8:
        assert not verify_password(_wrong(password), stored)


def _shape(value: str) -> str:
    """A hash with its random parts blanked, to compare the format with doveadm's."""
    out = []
    for c in value:
        out.append("a" if c.isalnum() or c in "./+=" else c)
    return "".join(out)


def test_hash_password_looks_like_doveadm() -> None:
    # same length and punctuation as doveadm's output for every scheme in the vectors
    for v in VECTORS:
        if v["source"] != f"doveadm pw -s {v['scheme']}" or v["password"] != "pässwörd":
            continue
        if v["scheme"] in ("ARGON2I", "ARGON2ID"):
            mine = hash_password("pässwörd", v["scheme"])
            assert mine.rsplit("$", 2)[0] == v["hash"].rsplit("$", 2)[0]
            assert len(mine) == len(v["hash"])
            continue
        mine = hash_password(v["password"], v["scheme"])
        assert _shape(mine) == _shape(v["hash"]), v["scheme"]


def test_hash_password_rounds_and_default() -> None:
    assert hash_password("x").startswith("{SHA512-CRYPT}$6$")
    assert "$rounds=10000$" in hash_password("x", "SHA512-CRYPT", rounds=10000)
    assert hash_password("x", "BLF-CRYPT", rounds=6).startswith("{BLF-CRYPT}$2y$06$")
    assert "$1000$" in hash_password("x", "PBKDF2", rounds=1000)
    assert hash_password("x", "CRYPT").startswith("{CRYPT}$2y$05$")
    with pytest.raises(UnknownScheme):
        hash_password("x", "NOSUCH")
    with pytest.raises(UnknownScheme):
        hash_password("x", "SHA.ROT13")
    with pytest.raises(UnknownScheme):
        hash_password("x", "PLAIN-TRUNC")


def test_identify() -> None:
    assert identify("{ssha}abc") == "SSHA"
    assert identify("$1$abc$def") == "MD5-CRYPT"
    assert identify("abc", "plain") == "PLAIN"
    assert identify("{NOPE}abc") is None


def test_digests() -> None:
    # RFC 1320 appendix A.5 test suite
    assert md4(b"").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"
    assert md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"
    assert md4(b"1234567890" * 8).hex() == "e33b4ddc9c38f2199c3e7b164fcc0536"
    # a key longer than the block is hashed first (RFC 2104 §2)
    long_key = hash_password("k" * 100, "CRAM-MD5")
    assert verify_password("k" * 100, long_key)
    assert cram_md5_context(b"k" * 100) == cram_md5_context(hashlib.md5(b"k" * 100).digest())


SCHEME_NAMES = [*schemes.SCHEMES, "SHA512-CRYPT.B64", "SSHA.HEX", "NOSUCH", ""]


@given(st.sampled_from(SCHEME_NAMES), st.text(max_size=120), st.text(max_size=20),
       st.sampled_from(["CRYPT", "PLAIN", "MD5", "PLAIN-MD5.HEX", "X"]))
def test_any_stored_value_is_true_or_false(scheme: str, data: str, password: str, default: str) -> None:
    stored = "{" + scheme + "}" + data if scheme else data
    assert verify_password(password, stored, default) in (True, False)
