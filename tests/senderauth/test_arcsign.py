"""The ARC sealer on its own: what it refuses to seal (no results of ours, a failed chain, a later
set without our arc= result), and a set that dkimpy's ARC verifier accepts."""

from __future__ import annotations

from pathlib import Path

import dkim
import pytest

from pymailsrv.senderauth import keys
from pymailsrv.senderauth.dkim import arc_seal

MSG = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.fixture(scope="module")
def arc_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[keys.SigningKey, bytes]:
    d = tmp_path_factory.mktemp("arc")
    public = keys.generate("rsa", str(d / "arc"))
    return keys.parse_key_value(f"example.com:arc:{d / 'arc'}", "t"), f"v=DKIM1; k=rsa; p={public}".encode()


@pytest.mark.parametrize("header", [
    b"",  # nothing of ours
    b"Authentication-Results: other.example; spf=pass smtp.mailfrom=sender.test; arc=none\r\n",
    b"Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=sender.test; arc=fail\r\n",
])
def test_not_sealed(arc_key: tuple[keys.SigningKey, bytes], header: bytes) -> None:
    assert arc_seal(header + MSG, arc_key[0], "mx.example.com") == []


def test_first_set_verifies_in_dkimpy(arc_key: tuple[keys.SigningKey, bytes], tmp_path: Path) -> None:
    key, record = arc_key
    ours = b"Authentication-Results: MX.example.com;\r\n\tspf=pass smtp.mailfrom=sender.test;\r\n\tarc=none\r\n"
    fields = arc_seal(ours + MSG, key, "mx.example.com", timestamp=1_700_000_000)
    assert [f.split(b":")[0] for f in fields] == [b"ARC-Authentication-Results", b"ARC-Message-Signature",
                                                  b"ARC-Seal"]
    assert b"i=1; mx.example.com;" in fields[0] and b"cv=none" in fields[2]
    sealed = b"".join(fields) + ours + MSG

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return record if name.rstrip(b".") == b"arc._domainkey.example.com" else b""

    cv, _, reason = dkim.arc_verify(sealed, dnsfunc=dnsfunc)
    assert cv == b"pass", reason
    assert dkim.arc_verify(sealed.replace(b"body", b"b0dy"), dnsfunc=dnsfunc)[0] == b"fail"
