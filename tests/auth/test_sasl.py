"""SASL PLAIN (RFC 4616) and LOGIN decoding: every malformed case is a SaslError, nothing else."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymailsrv.auth.sasl import (
    LOGIN_PASSWORD_PROMPT,
    LOGIN_USERNAME_PROMPT,
    MAX_SASL_BYTES,
    SaslCancelled,
    SaslError,
    SaslExchange,
    check_authzid,
    decode_base64,
    decode_login_field,
    decode_plain,
    plaintext_allowed,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_plain_good() -> None:
    assert decode_plain(b64(b"\0alice@example.com\0secret")) == ("", "alice@example.com", "secret")
    assert decode_plain(b64(b"alice@example.com\0alice@example.com\0s")) == (
        "alice@example.com", "alice@example.com", "s")
    assert decode_plain(b64("\0jürgen\0pässwörd 密码".encode())) == ("", "jürgen", "pässwörd 密码")
    assert decode_plain(b64(b"\0u\0p").encode()) == ("", "u", "p")  # bytes input
    assert decode_plain("  " + b64(b"\0u\0p") + "\r\n") == ("", "u", "p")


@pytest.mark.parametrize("raw", [
    b"", b"alice", b"alice\0secret", b"\0\0", b"\0alice\0", b"\0\0secret", b"a\0b\0c\0d",
    b"\0alice\0se\xffcret", b"\0al\xc3ice\0secret", b"\xff\0alice\0secret",
])
def test_plain_malformed(raw: bytes) -> None:
    with pytest.raises(SaslError):
        decode_plain(b64(raw))


@pytest.mark.parametrize("text", [
    "=", "*", "!!!!", "YWxp Y2U=", "YWxpY2U", "YWxpY2U===", "AGFsaWNlAHNlY3JldA=x", "ä", "\x00",
    "A" * (MAX_SASL_BYTES + 4), "AGFsaWNlAHNlY3JldA==\nAA==",
])
def test_plain_bad_base64_and_oversize(text: str) -> None:
    with pytest.raises(SaslError):
        decode_plain(text)
    with pytest.raises(SaslError):
        decode_plain(text.encode("utf-8"))


def test_base64_edges() -> None:
    assert decode_base64("=") == b""  # RFC 4954 empty initial response
    assert decode_base64("") == b""
    assert decode_base64(b64(b"x" * 100)) == b"x" * 100
    with pytest.raises(SaslError):
        decode_base64(b"\xff\xfe")


def test_login_field() -> None:
    assert decode_login_field(b64("jürgen".encode())) == "jürgen"
    assert decode_login_field("=") == ""
    for bad in (b64(b"a\0b"), b64(b"\xff"), "%%%", "A" * (MAX_SASL_BYTES + 4)):
        with pytest.raises(SaslError):
            decode_login_field(bad)


def test_authzid() -> None:
    check_authzid("", "alice@example.com")
    check_authzid("Alice@Example.com ", "alice@example.com")
    with pytest.raises(SaslError):
        check_authzid("bob@example.com", "alice@example.com")


def test_exchange_plain_without_initial_response() -> None:
    ex = SaslExchange("plain")
    assert ex.challenge == "" and not ex.done
    ex.respond(b64(b"\0alice\0secret"))
    assert ex.done and (ex.authcid, ex.password) == ("alice", "secret")
    with pytest.raises(SaslError):
        ex.respond(b64(b"\0alice\0secret"))


def test_exchange_plain_initial_response_and_authzid() -> None:
    ex = SaslExchange("PLAIN", b64(b"alice\0alice\0secret"))
    assert ex.done and ex.authzid == "alice"
    with pytest.raises(SaslError):
        SaslExchange("PLAIN", b64(b"admin\0alice\0secret"))
    with pytest.raises(SaslError):
        SaslExchange("PLAIN", "=")


def test_exchange_login() -> None:
    ex = SaslExchange("LOGIN")
    assert base64.b64decode(ex.challenge or "") == b"Username:"
    assert ex.challenge == LOGIN_USERNAME_PROMPT
    ex.respond(b64(b"alice@example.com"))
    assert ex.challenge == LOGIN_PASSWORD_PROMPT
    ex.respond(b64("pässwörd".encode()).encode())
    assert ex.done and (ex.authcid, ex.password) == ("alice@example.com", "pässwörd")


def test_exchange_login_initial_response_is_the_user() -> None:
    ex = SaslExchange("LOGIN", b64(b"alice"))
    assert ex.challenge == LOGIN_PASSWORD_PROMPT
    ex.respond(b64(b"secret"))
    assert (ex.authcid, ex.password) == ("alice", "secret")


@pytest.mark.parametrize("steps", [["="], ["", ""], [b64(b"u"), "="], [b64(b"u"), "!!"], [b64(b"\xff")]])
def test_exchange_login_malformed(steps: list[str]) -> None:
    ex = SaslExchange("LOGIN")
    with pytest.raises(SaslError):
        for s in steps:
            ex.respond(s)


def test_exchange_cancel_and_unknown() -> None:
    for mech in ("PLAIN", "LOGIN"):
        with pytest.raises(SaslCancelled):
            SaslExchange(mech).respond("*\r\n")
        with pytest.raises(SaslCancelled):
            SaslExchange(mech).respond(b"*")
    with pytest.raises(SaslError):
        SaslExchange("CRAM-MD5")
    with pytest.raises(SaslError):
        SaslExchange("")


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_any_input_is_value_or_sasl_error(data: str | bytes) -> None:
    for fn in (decode_plain, decode_login_field, decode_base64):
        try:
            fn(data)
        except SaslError:
            pass
    for mech in ("PLAIN", "LOGIN"):
        try:
            ex = SaslExchange(mech)
            ex.respond(data)
            if not ex.done:
                ex.respond(data)
        except SaslError:
            pass


@given(st.binary(max_size=300))
def test_any_decoded_bytes_is_value_or_sasl_error(raw: bytes) -> None:
    try:
        authzid, authcid, password = decode_plain(b64(raw))
    except SaslError:
        return
    assert authcid and password and "\0" not in authzid + authcid + password


@pytest.mark.parametrize(("disable", "tls", "remote", "local", "allowed"), [
    (True, True, "203.0.113.9", "192.0.2.1", True),
    (True, False, "203.0.113.9", "192.0.2.1", False),
    (True, False, "127.0.0.1", "", True),
    (True, False, "::1", "", True),
    (True, False, "::ffff:127.0.0.1", "", True),
    (True, False, "192.0.2.1", "192.0.2.1", True),  # same host
    (True, False, "[2001:db8::1]", "2001:db8::1", True),
    (True, False, "unknown", "", False),
    (True, False, "203.0.113.9", "garbage", False),
    (False, False, "203.0.113.9", "", True),
])
def test_plaintext_allowed(disable: bool, tls: bool, remote: str, local: str, allowed: bool) -> None:
    assert plaintext_allowed(disable, tls=tls, remote_ip=remote, local_ip=local) is allowed
