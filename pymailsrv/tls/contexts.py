"""The server TLS context of a listener (SMTP, IMAP, POP3): its default certificate and the
certificates chosen by SNI. Built anew on every start and reload, so a certificate installed on
disk (by the ACME client, or by hand) is served from the next reload on."""

from __future__ import annotations

import ssl

from pymailsrv.config.settings import Settings
from pymailsrv.config.tls import server_context
from pymailsrv.tls.files import issued_certificate
from pymailsrv.tls.sni import load_sni_maps


def listener_context(settings: Settings, cert_file: str, key_file: str) -> ssl.SSLContext | None:
    """The ACME certificate once issued, else ``cert_file``/``key_file`` (the listener's
    parameters), with tls_server_sni_maps; None when there is no certificate at all."""
    issued = issued_certificate(settings)
    if issued:
        ctx = server_context(issued, "")
    elif cert_file:
        ctx = server_context(cert_file, key_file)
    else:
        return None
    sni = load_sni_maps(settings.get_list("tls_server_sni_maps"))
    if sni is not None:
        ctx.sni_callback = sni.callback
    return ctx
