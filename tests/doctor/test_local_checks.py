"""The doctor's local checks on real files: certificates (expired, future, wrong name, key that
does not match, SNI map entries, ACME's), modes and owners of directories and key files."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pymailsrv.config.settings import Settings
from pymailsrv.doctor.checks_certs import check_certificates, covers
from pymailsrv.doctor.checks_files import check_files
from pymailsrv.doctor.report import Report
from pymailsrv.tls.certinfo import CertificateInfo

NOW = datetime.datetime.now(datetime.UTC)


def make_cert(directory: Path, stem: str, names: list[str], *, days_left: float = 90, starts_in: float = -1,
              ca: bool = False) -> tuple[str, str]:
    """A certificate (issued by a throwaway CA unless ``ca``: then self-signed) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_key = key if ca else ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    issuer = subject if ca else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW + datetime.timedelta(days=starts_in))
            .not_valid_after(NOW + datetime.timedelta(days=days_left))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return str(cert_file), str(key_file)


def _settings(tmp_path: Path, cert: str, key: str, **params: str) -> Settings:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return Settings({"data_directory": str(data), "myhostname": "mx.example.test", "tls_cert_file": cert,
                     "tls_key_file": key, **params})


def _certs(settings: Settings) -> Report:
    report = Report()
    check_certificates(settings, report)
    return report


def test_a_good_certificate(tmp_path: Path) -> None:
    report = _certs(_settings(tmp_path, *make_cert(tmp_path, "good", ["mx.example.test"])))
    (finding,) = report.about("tls_cert_file")
    assert finding.level == "ok" and "issued by Test CA" in finding.text and report.status() == 0


@pytest.mark.parametrize(("days_left", "starts_in", "names", "level", "text"), [
    (-1, -30, ["mx.example.test"], "error", "expired on"),
    (90, 2, ["mx.example.test"], "error", "not valid before"),
    (5, -1, ["mx.example.test"], "warning", "expires in 5 days"),
    (90, -1, ["other.example.test"], "warning", "does not cover mx.example.test"),
    (90, -1, ["*.example.test"], "ok", "*.example.test"),
])
def test_certificate_findings(tmp_path: Path, days_left: float, starts_in: float, names: list[str],
                              level: str, text: str) -> None:
    report = _certs(_settings(tmp_path, *make_cert(tmp_path, "c", names, days_left=days_left, starts_in=starts_in)))
    (finding,) = report.about("tls_cert_file")
    assert (finding.level, text in finding.text) == (level, True), finding
    assert report.status() == (1 if level == "error" else 0)


def test_self_signed_is_a_warning_with_acme_advice(tmp_path: Path) -> None:
    report = _certs(_settings(tmp_path, *make_cert(tmp_path, "self", ["mx.example.test"], ca=True)))
    (finding,) = report.about("tls_cert_file")
    assert finding.level == "warning" and "self-signed" in finding.text
    assert any("acme_directory_url" in line for line in finding.add)


def test_a_key_of_another_certificate_is_an_error(tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path, "a", ["mx.example.test"])
    _, other_key = make_cert(tmp_path, "b", ["mx.example.test"])
    (finding,) = _certs(_settings(tmp_path, cert, other_key)).about("tls_cert_file")
    assert finding.level == "error" and "cannot load TLS certificate" in finding.text


def _chain(key: str, cert: str) -> str:
    """A chain file as Postfix's SNI tables name them: the key, then the certificates."""
    path = Path(cert).with_suffix(".pem")
    path.write_text(Path(key).read_text() + Path(cert).read_text())
    path.chmod(0o600)
    return str(path)


def test_sni_map_certificates(tmp_path: Path) -> None:
    default = make_cert(tmp_path, "default", ["mx.example.test"])
    good_cert, good_key = make_cert(tmp_path, "good", ["mail.example.org"])
    old_cert, old_key = make_cert(tmp_path, "old", ["mail.example.net"], days_left=-2, starts_in=-90)
    wild_cert, wild_key = make_cert(tmp_path, "wild", ["*.example.com"])
    table = tmp_path / "sni"
    table.write_text(f"mail.example.org {_chain(good_key, good_cert)}\nmail.example.net {_chain(old_key, old_cert)}\n"
                     f".example.com {_chain(wild_key, wild_cert)}\nmail.example.info {_chain(good_key, good_cert)}\n")
    report = _certs(_settings(tmp_path, *default, tls_server_sni_maps=f"texthash:{table}"))
    assert [f.level for f in report.about("SNI mail.example.org")] == ["ok"]
    assert "expired" in report.about("SNI mail.example.net")[0].text
    assert [f.level for f in report.about("SNI .example.com")] == ["ok"]
    assert "does not cover mail.example.info" in report.about("SNI mail.example.info")[0].text
    assert report.status() == 1


def test_the_acme_certificate_is_judged_once_issued(tmp_path: Path) -> None:
    default = make_cert(tmp_path, "default", ["mx.example.test"])
    settings = _settings(tmp_path, *default, acme_directory_url="https://acme.example.test/dir",
                         acme_domains="smtp.example.test")
    acme = tmp_path / "data" / "acme"
    acme.mkdir(mode=0o700)
    cert, key = make_cert(tmp_path, "issued", ["mx.example.test"], days_left=10)
    (acme / "certificate.pem").write_text(Path(key).read_text() + Path(cert).read_text())
    report = _certs(settings)
    (finding,) = report.about("ACME certificate")
    assert finding.level == "warning" and "does not cover smtp.example.test" in finding.text
    assert not report.about("tls_cert_file")  # not served while the ACME certificate is


def test_covers() -> None:
    info = CertificateInfo("x", ("mx.example.test", "*.example.org"), "ca", 1, 0, 1)
    assert covers(info, "MX.example.test.") and covers(info, "a.example.org")
    assert not covers(info, "example.org") and not covers(info, "a.b.example.org")


# --- files -------------------------------------------------------------------------------------
def test_modes_and_owners(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "c", ["mx.example.test"])
    settings = _settings(tmp_path, cert, key)
    data = Path(settings.get_str("data_directory"))
    data.chmod(0o755)
    (data / "spool").mkdir(mode=0o700)
    (data / "vmail").mkdir()
    (data / "vmail").chmod(0o777)
    report = Report()
    check_files(settings, report)
    assert report.about("data_directory")[0].level == "ok"
    assert report.about("queue_directory")[0].level == "ok"
    vmail = report.about("virtual_mailbox_base")[0]
    assert vmail.level == "error" and "writable by everyone" in vmail.text and vmail.label == "fix"
    assert report.about("tls_key_file")[0].level == "ok"
    Path(key).chmod(0o640)
    report = Report()
    check_files(settings, report)
    assert report.about("tls_key_file")[0].level == "warning"
    Path(key).chmod(0o644)
    report = Report()
    check_files(settings, report)
    finding = report.about("tls_key_file")[0]
    assert finding.level == "error" and finding.add == (f"chmod 600 {key}",)


def test_a_missing_data_directory(tmp_path: Path) -> None:
    settings = Settings({"data_directory": str(tmp_path / "nowhere")})
    report = Report()
    check_files(settings, report)
    (finding,) = report.findings
    assert finding.level == "error" and finding.add == (f"pymailsrv init --data-dir {tmp_path / 'nowhere'}",)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_directory_of_another_owner(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "c", ["mx.example.test"])
    settings = _settings(tmp_path, cert, key)
    spool = Path(settings.get_str("data_directory")) / "spool"
    spool.mkdir(mode=0o700)
    os.chown(spool, 65534, 65534)
    report = Report()
    check_files(settings, report)
    finding = report.about("queue_directory")[0]
    assert finding.level == "error" and "owned by" in finding.text


def test_log_targets(tmp_path: Path) -> None:
    from tests.log_receivers import unix_syslog

    cert, key = make_cert(tmp_path, "c", ["mx.example.test"])

    def finding(**params: str) -> tuple[str, str, str]:
        report = Report()
        check_files(_settings(tmp_path, cert, key, **params), report)
        (found,) = report.about("log_file") or report.about("log_target")
        return found.level, found.subject, found.text

    assert finding(log_file=str(tmp_path / "nowhere" / "mail.log"))[:2] == ("error", "log_file")
    assert finding(log_file=str(tmp_path / "mail.log"))[0] == "ok"
    with unix_syslog() as (path, _received):
        assert finding(log_target="syslog", syslog_address=path)[0] == "ok"
    assert finding(log_target="syslog", syslog_address=str(tmp_path / "no-log"))[0] == "warning"
    assert finding(log_target="journald", journald_socket=str(tmp_path / "none"))[0] == "info"
