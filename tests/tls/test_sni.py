"""tls_server_sni_maps: a certificate per name asked for by SNI, on every TLS listener of a real
``pymailsrv serve`` (SMTP STARTTLS and smtps, IMAP STARTTLS and imaps, POP3 STLS and pop3s),
with worker processes; the table read as Postfix reads it (the name, then .parent domains)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.config.tls import generate_self_signed
from pymailsrv.errors import ConfigError
from pymailsrv.tls.contexts import listener_context
from pymailsrv.tls.sni import load_sni_maps, read_table
from tests.app.server_process import SERVICES, ServerProcess, cli, write_config
from tests.tls_client import common_name, peer_certificate, tls_connect


def _chain_file(directory: Path, name: str) -> Path:
    """A Postfix-style chain file for ``name``: the key, then the certificate."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    generate_self_signed(name, str(cert), str(key), days=30)
    chain = directory / f"{name}.pem"
    chain.write_bytes(key.read_bytes() + cert.read_bytes())
    return chain


@pytest.fixture
def sni_site(tmp_path: Path) -> tuple[Path, Path]:
    """A default certificate (mx.example.test) and an SNI table: mail.one.test by name (file
    named relative to the table), every subdomain of two.test by ``.two.test``."""
    certs = tmp_path / "certs"
    certs.mkdir()
    generate_self_signed("mx.example.test", str(certs / "default.crt"), str(certs / "default.key"), days=30)
    _chain_file(certs, "mail.one.test")
    two = _chain_file(certs, "mail.two.test")
    table = certs / "sni"
    table.write_text("# name  key and chain\nmail.one.test  mail.one.test.pem\n.two.test  " + str(two) + "\n")
    return certs, table


def _serve(tmp_path: Path, sni_site: tuple[Path, Path], workers: int) -> ServerProcess:
    certs, table = sni_site
    conf = write_config(tmp_path, str(certs / "default.crt"), str(certs / "default.key"),
                        tls_server_sni_maps=f"texthash:{table}", worker_processes=str(workers))
    assert cli(conf, "db", "upgrade").returncode == 0
    return ServerProcess(conf).start()


def test_each_name_gets_its_certificate_on_every_listener(tmp_path: Path, sni_site: tuple[Path, Path]) -> None:
    server = _serve(tmp_path, sni_site, workers=2)
    try:
        for service in SERVICES:
            port = server.ports[service]
            served = {name: common_name(peer_certificate(tls_connect(port, service, name)))
                      for name in ("mail.one.test", "MAIL.TWO.TEST", "other.example", None)}
            assert served == {"mail.one.test": "mail.one.test", "MAIL.TWO.TEST": "mail.two.test",
                              "other.example": "mx.example.test", None: "mx.example.test"}, service
    finally:
        assert server.stop() == 0


def test_verified_by_a_client_that_trusts_only_that_name(tmp_path: Path, sni_site: tuple[Path, Path]) -> None:
    """A client checking the certificate against its name (and no other CA) succeeds for the
    name it asked for, over IMAP STARTTLS in one process."""
    certs = sni_site[0]
    server = _serve(tmp_path, sni_site, workers=0)
    try:
        strict = ssl.create_default_context(cafile=str(certs / "mail.one.test.crt"))
        with tls_connect(server.ports["imap"], "imap", "mail.one.test", strict) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_connect(server.ports["imap"], "imap", "other.example", strict)
    finally:
        assert server.stop() == 0


def test_table_forms_and_errors(tmp_path: Path, sni_site: tuple[Path, Path]) -> None:
    certs, table = sni_site
    assert read_table(f"texthash:{table}") == {"mail.one.test": [str(certs / "mail.one.test.pem")],
                                               ".two.test": [str(certs / "mail.two.test.pem")]}
    inline = f"inline:{{ {{mail.one.test = {certs}/mail.one.test.pem {certs}/mail.two.test.pem}} }}"
    assert read_table(inline) == {"mail.one.test": [f"{certs}/mail.one.test.pem", f"{certs}/mail.two.test.pem"]}
    sni = load_sni_maps([f"texthash:{table}"])
    assert sni is not None
    assert sni.select("mail.one.test") is not None and sni.select("x.y.two.test") is sni.select("mail.two.test")
    assert sni.select("two.test") is None and sni.select("one.test") is None and sni.select(None) is None
    with pytest.raises(ConfigError, match="only texthash:, hash: and inline:"):
        read_table("cidr:/etc/nothing")
    with pytest.raises(ConfigError, match="cannot open table"):
        read_table(f"hash:{tmp_path}/missing")
    (certs / "bad").write_text("mail.bad.test  nowhere.pem\n")
    with pytest.raises(ConfigError, match=r"nowhere\.pem"):
        load_sni_maps([f"texthash:{certs}/bad"])


def test_listener_context_needs_a_default_certificate(sni_site: tuple[Path, Path]) -> None:
    certs, table = sni_site
    settings = Settings({"tls_server_sni_maps": f"texthash:{table}"})
    assert listener_context(settings, "", "") is None
    ctx = listener_context(settings, str(certs / "default.crt"), str(certs / "default.key"))
    assert ctx is not None and ctx.sni_callback is not None


def test_postconf_lists_the_certificate_parameters(tmp_path: Path) -> None:
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    out = cli(conf, "postconf", "-d").stdout
    for name in ("tls_server_sni_maps", "acme_directory_url", "acme_domains", "acme_http_listen", "acme_tls_listen",
                 "acme_renew_before", "acme_minimal_backoff_time", "acme_maximal_backoff_time"):
        assert f"\n{name} =" in out
    assert "\nacme_http_listen = 80\n" in out and "\nacme_renew_before = 30d\n" in out
