#!/bin/sh
# Container start: a self-signed certificate on first start (replace it with a real one in the
# tls volume), the PostfixAdmin schema created or recognised, then the command (default: serve).
set -e
CONF="${PYMAILSRV_CONFIG:-/etc/pymailsrv/pymailsrv.conf}"
TLS=/etc/pymailsrv/tls
if [ ! -f "$TLS/cert.pem" ]; then
    mkdir -p "$TLS"
    python -c 'import sys; from pymailsrv.config.tls import generate_self_signed as g; g(*sys.argv[1:])' \
        "${MAIL_HOSTNAME:-localhost}" "$TLS/cert.pem" "$TLS/key.pem"
fi
pymailsrv --config "$CONF" db upgrade
exec pymailsrv --config "$CONF" "$@"
