"""The doctor's SPF evaluation and DKIM key comparison against a DNS responder on loopback."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from pymailsrv.config.settings import Settings
from pymailsrv.doctor.checks_dns import DnsChecks
from pymailsrv.doctor.dkim_keys import keys_for, public_record, read_key_table, tag, zone_strings
from pymailsrv.doctor.report import Report
from pymailsrv.doctor.spf import SpfView, spf_records, with_host
from pymailsrv.policy.dns import Resolver
from tests.dns_responder import DnsResponder

ME = ipaddress.ip_address("192.0.2.10")


@pytest.fixture
async def dns() -> AsyncIterator[DnsResponder]:
    responder = await DnsResponder().start()
    yield responder
    responder.stop()


def _resolver(dns: DnsResponder) -> Resolver:
    return Resolver([f"127.0.0.1:{dns.port}"], timeout=2.0)


@pytest.mark.parametrize(("record", "result"), [
    ("v=spf1 ip4:192.0.2.0/24 -all", "pass"),
    ("v=spf1 ip4:198.51.100.0/24 -all", "fail"),
    ("v=spf1 ip4:198.51.100.0/24 ~all", "softfail"),
    ("v=spf1 ?ip4:192.0.2.10 -all", "neutral"),
    ("v=spf1 a -all", "pass"),
    ("v=spf1 a:other.example.test/24 -all", "pass"),
    ("v=spf1 a:other.example.test -all", "fail"),
    ("v=spf1 mx -all", "pass"),
    ("v=spf1 include:_spf.example.test -all", "pass"),
    ("v=spf1 redirect=_spf.example.test", "pass"),
    ("v=spf1 include:_spf.provider.example -all", "fail"),
    ("v=spf1", "neutral"),
    ("v=spf1 exists:%{i}.spf.example.test -all", None),
    ("v=spf1 ptr -all", None),
])
async def test_spf_evaluation(dns: DnsResponder, record: str, result: str | None) -> None:
    dns.add("example.test", "TXT", f'"{record}"')
    dns.add("example.test", "A", "192.0.2.10")
    dns.add("example.test", "MX", "10 mx.example.test.")
    dns.add("mx.example.test", "A", "192.0.2.10")
    dns.add("other.example.test", "A", "192.0.2.77")
    dns.add("_spf.example.test", "TXT", '"v=spf1 ip4:192.0.2.8/29 -all"')
    dns.add("_spf.provider.example", "TXT", '"v=spf1 ip4:203.0.113.0/24 -all"')
    got, _why = await SpfView(_resolver(dns)).evaluate("example.test", ME)
    assert got == result


async def test_spf_lookup_limit(dns: DnsResponder) -> None:
    chain = " ".join(f"include:s{i}.example.test" for i in range(11))
    dns.add("example.test", "TXT", zone_strings(f"v=spf1 {chain} -all"))  # over 255: two strings
    for i in range(11):
        dns.add(f"s{i}.example.test", "TXT", '"v=spf1 ip4:203.0.113.1 -all"')
    got, why = await SpfView(_resolver(dns)).evaluate("example.test", ME)
    assert got is None and "10 DNS lookups" in why


def test_spf_records_and_with_host() -> None:
    assert spf_records(["v=spf1 mx -all", "google-site-verification=x", "v=spf10", "V=SPF1"]) == [
        "v=spf1 mx -all", "V=SPF1"]
    assert with_host("v=spf1 ip4:198.51.100.0/24 ~all", "mx.example.test") == (
        "v=spf1 ip4:198.51.100.0/24 a:mx.example.test ~all")
    assert with_host("v=spf1 redirect=_spf.example.test", "mx") == "v=spf1 a:mx redirect=_spf.example.test"
    assert with_host("v=spf1 mx", "mx") == "v=spf1 mx a:mx"


def _write_key(path: Path, kind: str) -> None:
    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def test_key_table_and_public_records(tmp_path: Path) -> None:
    _write_key(tmp_path / "rsa.key", "rsa")
    _write_key(tmp_path / "ed.key", "ed25519")
    table = tmp_path / "KeyTable"
    table.write_text("# OpenDKIM KeyTable\nsel1._domainkey.example.test example.test:sel1:rsa.key\n"
                     "ed._domainkey example.test:ed:" + str(tmp_path / "ed.key") + "\n"
                     "any %:all:rsa.key\n\nother other.example:s:rsa.key\n")
    keys = read_key_table(f"refile:{table}")
    assert [(k.selector, k.domain) for k in keys_for(keys, "example.test")] == [
        ("sel1", "example.test"), ("ed", "example.test"), ("all", "example.test")]
    rsa_record = public_record(str(tmp_path / "rsa.key"))
    assert rsa_record.startswith("v=DKIM1; k=rsa; p=MII") and len(tag(rsa_record, "p") or "") > 300
    ed_record = public_record(str(tmp_path / "ed.key"))
    assert ed_record.startswith("v=DKIM1; k=ed25519; p=") and len(tag(ed_record, "p") or "") == 44
    strings = zone_strings(rsa_record)
    assert strings.count('"') >= 4 and strings.replace('" "', "").strip('"') == rsa_record
    table.write_text("broken line\n")
    with pytest.raises(ValueError, match="line 1"):
        read_key_table(str(table))


async def test_dkim_key_published_missing_or_different(dns: DnsResponder, tmp_path: Path) -> None:
    _write_key(tmp_path / "k", "rsa")
    record = public_record(str(tmp_path / "k"))
    settings = Settings({"myhostname": "mx.example.test", "data_directory": str(tmp_path)})
    report = Report()
    checks = DnsChecks(settings, report, _resolver(dns))
    # published split in strings and with blanks inside p=, as zone files often have it
    dns.add("s1._domainkey.example.test", "TXT", zone_strings(record.replace("p=", "p= ", 1), width=100))
    await checks.check_dkim_key("example.test", "s1", str(tmp_path / "k"))
    await checks.check_dkim_key("example.test", "s2", str(tmp_path / "k"))
    _write_key(tmp_path / "other", "rsa")
    dns.add("s3._domainkey.example.test", "TXT", zone_strings(public_record(str(tmp_path / "other"))))
    await checks.check_dkim_key("example.test", "s3", str(tmp_path / "k"))
    levels = [(f.subject, f.level) for f in report.findings]
    assert levels == [("example.test DKIM s1", "ok"), ("example.test DKIM s2", "error"),
                      ("example.test DKIM s3", "error")]
    assert report.findings[1].add[0].startswith("s2._domainkey.example.test. 3600 IN TXT \"v=DKIM1; k=rsa; p=")
    assert "another key" in report.findings[2].text


async def test_a_host_name_that_is_not_fully_qualified(dns: DnsResponder, tmp_path: Path) -> None:
    from pymailsrv.doctor.checks_database import Domains

    report = Report()
    await DnsChecks(Settings({"myhostname": "vm", "data_directory": str(tmp_path)}), report,
                    _resolver(dns)).run(Domains())
    (finding,) = report.about("myhostname")
    assert finding.level == "error" and "not a fully-qualified name" in finding.text
