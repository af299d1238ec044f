"""The certificates the TLS listeners serve: each loads with its key (as the server loads it),
covers the names clients ask for, and is not about to expire. The ACME certificate once
issued, else tls_cert_file (and smtpd_tls_cert_file); and every certificate of
tls_server_sni_maps for its name."""

from __future__ import annotations

import time

from pymailsrv.config.settings import Settings
from pymailsrv.config.tls import server_context
from pymailsrv.doctor.report import Report
from pymailsrv.errors import ConfigError
from pymailsrv.tls.certinfo import CertificateInfo, read_certificate
from pymailsrv.tls.files import issued_certificate
from pymailsrv.tls.sni import chain_files_context, read_table

DAY = 86400.0
EXPIRY_WARNING_DAYS = 14  # ACME renews at 30 days left; by 14 something is wrong


def covers(cert: CertificateInfo, name: str) -> bool:
    """RFC 6125 §6.4.3: an exact DNS name, or a wildcard for one leftmost label."""
    name = name.lower().rstrip(".")
    names = cert.names or (cert.subject.lower(),)
    rest = name.partition(".")[2]
    return name in names or (bool(rest) and f"*.{rest}" in names)


def check_certificates(settings: Settings, report: Report, *, now: float | None = None) -> None:
    now = time.time() if now is None else now
    hostname = settings.get_str("myhostname")
    issued = issued_certificate(settings)
    if issued:
        _check_one(report, "ACME certificate", issued, "", [hostname, *settings.get_list("acme_domains")], now)
        return
    seen: set[str] = set()
    for cert_param, key_param in (("tls_cert_file", "tls_key_file"), ("smtpd_tls_cert_file", "smtpd_tls_key_file")):
        cert_file, key_file = settings.get_str(cert_param), settings.get_str(key_param)
        if not cert_file or cert_file in seen:
            continue
        seen.add(cert_file)
        _check_one(report, cert_param, cert_file, key_file, [hostname], now)
    if not seen:
        report.warning("tls_cert_file", "not set: no TLS listener can start and STARTTLS is not offered",
                       ["tls_cert_file = /etc/pymailsrv/tls/cert.pem  (or acme_directory_url)"])
    for spec in settings.get_list("tls_server_sni_maps"):
        try:
            table = read_table(spec)
        except ConfigError as exc:
            report.error("tls_server_sni_maps", str(exc))
            continue
        for name, files in table.items():
            _check_sni(report, name, files, now)


def _check_one(report: Report, subject: str, cert_file: str, key_file: str, names: list[str], now: float) -> None:
    try:
        server_context(cert_file, key_file)  # as the listeners load it: the key matches
    except ConfigError as exc:
        report.error(subject, str(exc))
        return
    cert = read_certificate(cert_file)
    if cert is None:
        report.error(subject, f"{cert_file}: no certificate")
        return
    _judge(report, subject, cert_file, cert, [n for n in names if n and not covers(cert, n)], now)


def _check_sni(report: Report, name: str, files: list[str], now: float) -> None:
    subject = f"SNI {name}"
    try:
        chain_files_context(files)  # as the listeners load them
    except ConfigError as exc:
        report.error(subject, str(exc))
        return
    cert = next((c for c in map(read_certificate, files) if c is not None), None)
    if cert is None:
        report.error(subject, f"{', '.join(files)}: no certificate")
        return
    if name.startswith("."):  # a parent domain: some name below it
        parent = name[1:]
        missing = [] if any(n.endswith(name) or n == f"*.{parent}" for n in cert.names) else [f"*{name}"]
    else:
        missing = [] if covers(cert, name) else [name]
    _judge(report, subject, files[0], cert, missing, now)


def _judge(report: Report, subject: str, path: str, cert: CertificateInfo, missing: list[str], now: float) -> None:
    """``missing``: names clients ask for that the certificate does not cover."""
    days = (cert.not_after - now) / DAY
    until = time.strftime("%Y-%m-%d", time.gmtime(cert.not_after))
    if days < 0:
        report.error(subject, f"{path}: expired on {until}; clients refuse it",
                     ["pymailsrv cert renew  (with ACME), or install a new certificate"], label="fix")
    elif cert.not_before > now:
        report.error(subject, f"{path}: not valid before {time.strftime('%Y-%m-%d', time.gmtime(cert.not_before))}")
    elif missing:
        report.warning(subject, f"{path}: does not cover {', '.join(missing)} (it names "
                       f"{', '.join(cert.names) or cert.subject}); clients that check names refuse it")
    elif days < EXPIRY_WARNING_DAYS:
        report.warning(subject, f"{path}: expires in {days:.0f} days ({until})",
                       ["pymailsrv cert renew  (with ACME), or install a new certificate"], label="fix")
    elif cert.self_signed:
        report.warning(subject, f"{path}: self-signed (valid until {until}); mail clients, and "
                       "servers that verify (MTA-STS), refuse it",
                       ["acme_directory_url = https://acme-v02.api.letsencrypt.org/directory"])
    else:
        report.ok(subject, f"{path}: {', '.join(cert.names) or cert.subject}, issued by {cert.issuer}, "
                  f"valid until {until} ({days:.0f} days)")
