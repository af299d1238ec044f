"""SASL PLAIN (RFC 4616) and LOGIN: every malformed case is a SaslError of its type, nothing else."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymailsrv.auth.sasl import (
    LOGIN_PASSWORD_PROMPT,
    LOGIN_USERNAME_PROMPT,
    MAX_SASL_BYTES,
    AuthzidRefused,
    Credentials,
    SaslBadBase64,
    SaslCancelled,
    SaslError,
    SaslExchange,
    SaslMalformed,
    UnknownMechanism,
    check_authzid,
    decode_base64,
    decode_login_field,
    decode_plain,
    negotiate,
    offered,
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


def test_error_types() -> None:
    with pytest.raises(SaslBadBase64):
        decode_plain("!!!!")
    with pytest.raises(SaslBadBase64):
        decode_plain("A" * (MAX_SASL_BYTES + 4))
    for raw in (b"alice", b"\0alice\0se\xffcret", b"\0\0secret"):
        with pytest.raises(SaslMalformed) as malformed:
            decode_plain(b64(raw))
        assert not isinstance(malformed.value, SaslBadBase64)
    with pytest.raises(AuthzidRefused) as refused:
        SaslExchange("PLAIN", b64(b"bob@example.com\0alice@example.com\0pw"))
    assert refused.value.authcid == "alice@example.com"
    with pytest.raises(UnknownMechanism):
        SaslExchange("CRAM-MD5")


@pytest.mark.parametrize("authzid", ["alice@example.com", "ALICE@Example.COM", " alice@example.com.", ""])
def test_authzid_naming_the_login_is_accepted_as_the_directory_compares(authzid: str) -> None:
    check_authzid(authzid, "Alice@example.com")


@pytest.mark.parametrize("authzid", ["bob@example.com", "alice", "alice@example.co", "*"])
def test_any_other_authzid_is_refused(authzid: str) -> None:
    with pytest.raises(AuthzidRefused):
        check_authzid(authzid, "alice@example.com")


def test_offered_mechanisms_follow_the_plaintext_rule() -> None:
    assert offered(True) == ["PLAIN", "LOGIN"]
    assert offered(False) == []  # both send the password itself


async def test_negotiate_frames_nothing_itself() -> None:
    asked: list[str] = []
    answers = iter([b64(b"alice@example.com"), b64(b"s3cret")])

    async def ask(challenge: str) -> str:
        asked.append(challenge)
        return next(answers)

    assert await negotiate("login", None, ask) == Credentials("LOGIN", "alice@example.com", "s3cret")
    assert asked == [LOGIN_USERNAME_PROMPT, LOGIN_PASSWORD_PROMPT]
    assert await negotiate("PLAIN", b64(b"\0a\0b"), ask) == Credentials("PLAIN", "a", "b")

    async def cancel(challenge: str) -> str:
        return "*"

    with pytest.raises(SaslCancelled):
        await negotiate("PLAIN", None, cancel)
