"""ACME (RFC 8555): the main process's client that keeps a certificate for this host's names,
the HTTP-01 and TLS-ALPN-01 (RFC 8737) responders it answers the CA with, ``pymailsrv cert``.

Light on purpose (the acme library is imported by the modules that use it): the command-line
parser reads the revocation reasons from here."""

# RFC 5280 §5.3.1 reason codes a subscriber may give (RFC 8555 §7.6)
REVOCATION_REASONS = {"unspecified": 0, "keyCompromise": 1, "superseded": 4, "cessationOfOperation": 5}
