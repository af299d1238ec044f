"""``pymailsrv dkim keygen`` writes a 0600 key whose TXT record signs verifiably; ``dkim check``
tells a published key from a missing or different one (loopback DNS)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from pymailsrv.cli import main
from pymailsrv.senderauth import keys
from tests.dns_responder import in_thread
from tests.senderauth.conftest import txt


def _keygen(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, str]:
    assert main(["dkim", "keygen", "example.org", "-D", str(tmp_path / "keys"), *extra]) == 0
    out = capsys.readouterr().out
    record = re.search(r'IN TXT \( (.*) \)', out)
    assert record is not None
    value = "".join(re.findall(r'"([^"]*)"', record.group(1)))
    return out, value


@pytest.mark.parametrize(("algorithm", "selector", "k"), [("rsa", "default", "rsa"), ("ed25519", "ed25519", "ed25519")])
def test_keygen_writes_a_private_key_and_prints_its_record(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          algorithm: str, selector: str, k: str) -> None:
    out, value = _keygen(tmp_path, capsys, "--algorithm", algorithm)
    path = tmp_path / "keys" / "example.org" / f"{selector}.private"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"{selector}._domainkey.example.org. IN TXT" in out
    assert value.startswith(f"v=DKIM1; k={k}; p=")
    key = keys.parse_key_value(f"example.org:{selector}:{path}", "test")
    assert value.endswith(keys.public_value(key))
    # a second key under the same selector would overwrite the first: refused
    assert main(["dkim", "keygen", "example.org", "-D", str(tmp_path / "keys"), "--algorithm", algorithm]) == 1


def test_check_tells_published_from_missing_and_different(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, rsa_value = _keygen(tmp_path, capsys, "--selector", "s1")
    _, ed_value = _keygen(tmp_path, capsys, "--selector", "s2", "--algorithm", "ed25519")
    keydir = tmp_path / "keys" / "example.org"
    (tmp_path / "KeyTable").write_text(f"k1 example.org:s1:{keydir / 's1.private'}\n"
                                       f"k2 example.org:s2:{keydir / 's2.private'}\n")
    (tmp_path / "SigningTable").write_text("*@example.org k1\n*@example.org k2\n")
    with in_thread() as dns:
        conf = tmp_path / "pymailsrv.conf"
        conf.write_text(f"data_directory = {tmp_path}\ndns_nameservers = 127.0.0.1:{dns.port}\n"
                        f"dkim_key_table = {tmp_path / 'KeyTable'}\n"
                        f"dkim_signing_table = refile:{tmp_path / 'SigningTable'}\n")
        dns.add("s1._domainkey.example.org", "TXT", txt(rsa_value))
        assert main(["-c", str(conf), "dkim", "check", "example.org"]) == 1
        out = capsys.readouterr().out
        assert "s1._domainkey.example.org: ok (rsa-sha256)" in out
        assert "s2._domainkey.example.org: not published; publish:" in out
        other = "v=DKIM1; k=ed25519; p=" + "A" * 43 + "="
        dns.add("s2._domainkey.example.org", "TXT", txt(other))
        assert main(["-c", str(conf), "dkim", "check", "example.org"]) == 1
        assert "s2._domainkey.example.org: does not match the key" in capsys.readouterr().out
        dns.records[("s2._domainkey.example.org", "TXT")] = [txt(ed_value)]
        assert main(["-c", str(conf), "dkim", "check", "example.org"]) == 0
        assert main(["-c", str(conf), "dkim", "check", "other.example"]) == 1
        assert "no key in dkim_signing_table signs for other.example" in capsys.readouterr().err
