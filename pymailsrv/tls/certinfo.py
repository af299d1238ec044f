"""What a PEM certificate says about itself: the names it covers, its issuer, serial and validity."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    subject: str
    names: tuple[str, ...]  # DNS names of the subjectAltName, lower case
    issuer: str
    serial: int
    not_before: float  # epoch seconds
    not_after: float

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer

    def covers(self, names: list[str]) -> bool:
        return {n.lower().rstrip(".") for n in names} <= set(self.names)

    def serial_hex(self) -> str:
        return f"{self.serial:x}"


def certificate_info(pem: bytes) -> CertificateInfo:
    """The first certificate in ``pem`` (a chain file may start with the key); ValueError when
    there is none."""
    cert = x509.load_pem_x509_certificate(pem)  # skips PEM blocks of other kinds
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(n.lower() for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertificateInfo(subject=_common_name(cert.subject), names=names, issuer=_common_name(cert.issuer),
                           serial=cert.serial_number, not_before=cert.not_valid_before_utc.timestamp(),
                           not_after=cert.not_valid_after_utc.timestamp())


def read_certificate(path: str) -> CertificateInfo | None:
    """The certificate in the file at ``path``; None when the file is missing or holds none."""
    try:
        with open(path, "rb") as fh:
            return certificate_info(fh.read())
    except (OSError, ValueError):
        return None


def _common_name(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else name.rfc4514_string()
