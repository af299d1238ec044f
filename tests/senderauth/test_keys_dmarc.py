"""OpenDKIM SigningTable lookups (refile wildcards and the plain-file key order), DMARC records,
alignment and the pct sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymailsrv.errors import ConfigError
from pymailsrv.senderauth import dmarc, keys


@pytest.fixture
def key_table(tmp_path: Path) -> str:
    keys.generate("ed25519", str(tmp_path / "k.private"))
    (tmp_path / "KeyTable").write_text(
        f"user example.com:user:{tmp_path / 'k.private'}\n"
        f"dom example.com:dom:{tmp_path / 'k.private'}\n"
        f"parent %:parent:{tmp_path / 'k.private'}\n"
        f"any %:any:{tmp_path / 'k.private'}\n")
    return str(tmp_path / "KeyTable")


def _table(tmp_path: Path, key_table: str, text: str, kind: str = "") -> keys.SigningTable:
    (tmp_path / "SigningTable").write_text(text)
    return keys.SigningTable.load(key_table, f"{kind}{tmp_path / 'SigningTable'}")


def test_plain_signing_table_is_tried_in_opendkims_order(tmp_path: Path, key_table: str) -> None:
    table = _table(tmp_path, key_table, "ceo@example.com user\nexample.com dom\n.example.org parent\n* any\n")
    assert [k.selector for k in table.keys_for("ceo@example.com")] == ["user"]
    assert [k.selector for k in table.keys_for("bob@example.com")] == ["dom"]
    parent = table.keys_for("bob@sub.example.org")
    assert [(k.selector, k.domain) for k in parent] == [("parent", "sub.example.org")]
    assert [k.selector for k in table.keys_for("x@elsewhere.test")] == ["any"]


def test_refile_patterns_match_in_order_and_all_sign(tmp_path: Path, key_table: str) -> None:
    table = _table(tmp_path, key_table, "*@example.com dom\n*@*.example.com parent\n*@example.com user\n", "refile:")
    assert [k.selector for k in table.keys_for("a@example.com")] == ["dom", "user"]
    assert [k.selector for k in table.keys_for("a@sub.example.com")] == ["parent"]
    assert table.keys_for("a@example.org") == []


def test_signing_table_naming_an_unknown_key_is_a_config_error(tmp_path: Path, key_table: str) -> None:
    with pytest.raises(ConfigError, match="not in the dkim_key_table"):
        _table(tmp_path, key_table, "*@example.com nosuchkey\n", "refile:")


@pytest.mark.parametrize(("text", "expected"), [
    ("v=DMARC1; p=reject", dmarc.Record("reject", "reject")),
    ("v=DMARC1;p=quarantine;sp=none;pct=20;adkim=s;aspf=s", dmarc.Record("quarantine", "none", 20, "s", "s")),
    ("v=DMARC1; p=bogus", None),
    ("v=spf1 -all", None),
    ("v=DMARC1; p=none; pct=250", dmarc.Record("none", "none", 100)),
])
def test_parse_record(text: str, expected: dmarc.Record | None) -> None:
    assert dmarc.parse_record(text) == expected


def test_organizational_domain_uses_the_public_suffix_list() -> None:
    assert dmarc.organizational_domain("mail.example.co.uk") == "example.co.uk"
    assert dmarc.organizational_domain("a.b.example.com") == "example.com"
    assert dmarc.aligned("bounce.example.com", "example.com", "r")
    assert not dmarc.aligned("bounce.example.com", "example.com", "s")


async def test_pct_sampling_and_subdomain_policy() -> None:
    zone = {"_dmarc.example.com": ["v=DMARC1; p=reject; sp=quarantine; pct=50"]}

    async def lookup(name: str, rdtype: str) -> list[str]:
        return zone.get(name, [])

    picked = await dmarc.evaluate("example.com", "fail", "example.com", [], lookup, draw=lambda: 0.2)
    assert (picked.result, picked.action) == ("fail", "reject")
    spared = await dmarc.evaluate("example.com", "fail", "example.com", [], lookup, draw=lambda: 0.7)
    assert spared.action == "quarantine"
    sub = await dmarc.evaluate("news.example.com", "fail", "", [], lookup, draw=lambda: 0.1)
    assert (sub.requested, sub.action) == ("quarantine", "quarantine")
    ok = await dmarc.evaluate("news.example.com", "pass", "example.com", [], lookup)
    assert ok.result == "pass" and ok.action == "none"


def test_from_domain_needs_exactly_one_author() -> None:
    assert dmarc.from_domain(["A <a@Example.COM>"]) == "example.com"
    assert dmarc.from_domain(["a@example.com, b@example.org"]) is None
    assert dmarc.from_domain(["a@example.com", "b@example.com"]) is None
    assert dmarc.from_domain([]) is None


def test_values_from_the_message_cannot_forge_results_in_our_header() -> None:
    from pymailsrv.senderauth.dkim import Signature
    from pymailsrv.senderauth.results import Findings, header_value, parse
    from pymailsrv.senderauth.spf import SpfResult

    found = Findings(spf=SpfResult("fail", "x.test"),
                     dkim=[Signature("fail", "evil.test;dkim=pass", "s(1)", "rsa-sha256", "abc")], arc="none")
    value = header_value("mx.example.com", found)
    assert value.count("dkim=") == 1 and "evil" not in value and "s(1)" not in value
    assert "dkim=fail header.a=rsa-sha256 header.b=abc" in " ".join(value.split())
    parsed = parse(value)  # and it is RFC 8601 syntax, as authres reads it back
    assert [r.method for r in parsed.results] == ["spf", "dkim", "arc"]  # type: ignore[attr-defined]
    assert dmarc.from_domain(['"x" <a@example.com;dmarc=pass>']) is None


def test_relative_key_files_are_found_beside_the_key_table(tmp_path: Path) -> None:
    keys.generate("rsa", str(tmp_path / "rel.private"))
    (tmp_path / "KeyTable").write_text("k example.com:rel:rel.private\n")
    (tmp_path / "SigningTable").write_text("example.com k\n")
    table = keys.SigningTable.load(f"file:{tmp_path / 'KeyTable'}", str(tmp_path / "SigningTable"))
    assert [k.selector for k in table.keys_for("a@example.com")] == ["rel"]
