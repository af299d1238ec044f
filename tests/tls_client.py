"""A TLS client for the listeners as a mail client meets them: implicit TLS (smtps, imaps,
pop3s) or the protocol's STARTTLS dialogue first (SMTP STARTTLS, IMAP STARTTLS, POP3 STLS),
then a handshake that asks for a name by SNI. Raw sockets, so the name asked for is the test's
(the stdlib clients send the host they connected to)."""

from __future__ import annotations

import socket
import ssl

from cryptography import x509
from cryptography.x509.oid import NameOID

IMPLICIT = ("smtps", "imaps", "pop3s")
PROTOCOL = {"smtpd": "smtp", "submission": "smtp", "smtps": "smtp", "imap": "imap", "imaps": "imap",
            "pop3": "pop3", "pop3s": "pop3"}
GREETING = {"smtp": b"220 ", "imap": b"* OK", "pop3": b"+OK"}
# protocol: [(command, the start of the reply's last line)]
STARTTLS = {
    "smtp": [(b"EHLO client.test\r\n", b"250 "), (b"STARTTLS\r\n", b"220 ")],
    "imap": [(b"a1 STARTTLS\r\n", b"a1 OK")],
    "pop3": [(b"STLS\r\n", b"+OK")],
}
# after the handshake: a command and the start of its answer, to see the session goes on
AFTER = {"smtp": (b"EHLO client.test\r\n", b"250 "), "imap": (b"a2 NOOP\r\n", b"a2 OK"),
         "pop3": (b"CAPA\r\n", b".")}  # the end of the capability list


def tls_connect(port: int, service: str, server_name: str | None, context: ssl.SSLContext | None = None,
                timeout: float = 10.0) -> ssl.SSLSocket:
    """A TLS connection to ``service`` (a listener name: smtpd, submission, smtps, imap, imaps,
    pop3, pop3s) on 127.0.0.1 asking for ``server_name`` (None: no SNI). Without ``context``
    nothing is verified (the caller looks at the certificate)."""
    if context is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if service not in IMPLICIT:
            _expect(sock, GREETING[PROTOCOL[service]])
            for command, reply in STARTTLS[PROTOCOL[service]]:
                sock.sendall(command)
                _expect(sock, reply)
        tls = context.wrap_socket(sock, server_hostname=server_name)
    except BaseException:
        sock.close()
        raise
    if service in IMPLICIT:
        _expect(tls, GREETING[PROTOCOL[service]])
    command, reply = AFTER[PROTOCOL[service]]
    tls.sendall(command)
    _expect(tls, reply)
    return tls


def peer_certificate(tls: ssl.SSLSocket) -> x509.Certificate:
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _expect(sock: socket.socket, start: bytes) -> None:
    """Read whole lines until one starts with ``start``."""
    buf = b""
    while True:
        while b"\n" not in buf:
            data = sock.recv(4096)
            if not data:
                raise ConnectionError(f"closed while waiting for {start!r}; got {buf!r}")
            buf += data
        line, _, buf = buf.partition(b"\n")
        if line.startswith(start):
            assert not buf, f"unexpected data after {line!r}: {buf!r}"
            return
        if line[:1] in (b"4", b"5", b"-") or line.startswith((b"a1 NO", b"a1 BAD")):
            raise ConnectionError(f"refused: {line!r}")
