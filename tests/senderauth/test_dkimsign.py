"""Our DKIM signer (senderauth/dkimsign.py) against dkimpy's verifier: relaxed canonicalization of
odd white space, folding, repeated and missing fields, empty and unterminated bodies, LF input;
any message hypothesis makes up verifies, and any change to a signed field or the body fails."""

from __future__ import annotations

import base64

import dkim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymailsrv.senderauth import dkimsign, keys
from pymailsrv.senderauth.dkim import sign


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[keys.SigningKey], dict[bytes, bytes]]:
    d = tmp_path_factory.mktemp("signer")
    rsa = keys.generate("rsa", str(d / "r"))
    ed = keys.generate("ed25519", str(d / "e"))
    found = [keys.parse_key_value(f"example.com:{name}:{d / name}", "t") for name in ("r", "e")]
    zone = {b"r._domainkey.example.com.": f"v=DKIM1; k=rsa; p={rsa}".encode(),
            b"e._domainkey.example.com.": f"v=DKIM1; k=ed25519; p={ed}".encode()}
    return found, zone


def _signed(message: bytes, found: list[keys.SigningKey]) -> bytes:
    eol = b"\r\n" if b"\r\n" in message else b"\n"
    fields = b"".join(b"DKIM-Signature: " + v.encode().replace(b"\n", eol) + eol for v in sign(message, found))
    return fields + message


def _verifies(message: bytes, zone: dict[bytes, bytes], count: int = 2) -> bool:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return zone.get(name, b"")
    d = dkim.DKIM(message)
    try:
        return all(d.verify(idx=i, dnsfunc=dnsfunc) for i in range(count))
    except dkim.ValidationError:  # dkimpy raises for a body hash mismatch
        return False


@pytest.mark.parametrize("message", [
    b"From: a@example.com\r\nSubject:  lots   of\t space \t\r\n\r\nbody  \t\r\n\r\n\r\n",
    b"From: a@example.com\r\nSubject: folded\r\n\tacross\r\n  lines\r\nTo: x@y\r\nTo: z@w\r\n\r\nb\r\n",
    b"From: a@example.com\r\n\r\n",
    b"From: a@example.com\r\n\r\nno final line end",
    b"From: a@example.com\nSubject: LF only\n\nbody\n",
    b"FROM: a@example.com\r\nsubject:nospace\r\n\r\n \r\n",
])
def test_signature_verifies_in_dkimpy(signing: tuple[list[keys.SigningKey], dict[bytes, bytes]],
                                      message: bytes) -> None:
    found, zone = signing
    signed = _signed(message, found)
    assert _verifies(signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), zone)


def test_oversigned_field_added_later_breaks_the_signature(
        signing: tuple[list[keys.SigningKey], dict[bytes, bytes]]) -> None:
    found, zone = signing
    signed = _signed(b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n", found)
    assert _verifies(signed, zone)
    assert not _verifies(signed.replace(b"\r\n\r\nbody", b"\r\nSubject: another\r\n\r\nbody"), zone, 1)
    assert not _verifies(signed.replace(b"\r\n\r\nbody", b"\r\nTo: added@example.org\r\n\r\nbody"), zone, 1)


def test_selection_takes_instances_from_the_bottom() -> None:
    fields, _ = dkimsign.split(b"To: 1\r\nTo: 2\r\nFrom: f\r\n\r\n")
    assert dkimsign.select(fields, ["to", "to", "to", "from"]) == [b"To: 2\r\n", b"To: 1\r\n", b"From: f\r\n"]
    assert dkimsign.relaxed_header(b"SubJect :  a \r\n\t b  \r\n") == b"subject:a b\r\n"
    assert dkimsign.relaxed_body(b" a  b \r\n\r\n") == b" a b\r\n"
    assert dkimsign.relaxed_body(b"\r\n\r\n") == b""


_text = st.text(st.sampled_from("ab \t.:;<>@x"), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subject=_text, extra=st.lists(st.tuples(st.sampled_from(["To", "Cc", "X-Other", "Subject"]), _text),
                                     max_size=4),
       body=st.lists(_text, max_size=6), final_eol=st.booleans())
def test_any_message_verifies_and_a_changed_body_fails(
        signing: tuple[list[keys.SigningKey], dict[bytes, bytes]], subject: str, extra: list[tuple[str, str]],
        body: list[str], final_eol: bool) -> None:
    found, zone = signing
    head = f"From: a@example.com\r\nSubject: {subject}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in extra)
    text = "\r\n".join(body) + ("\r\n" if final_eol else "")
    message = (head + "\r\n" + text).encode()
    signed = _signed(message, found)
    assert _verifies(signed, zone)
    assert not _verifies(signed + b"tampered\r\n", zone, 1)
    assert base64.b64decode(sign(message, found[:1])[0].split("bh=")[1].split(";")[0])
