#!/bin/sh
# Container start: the data directory must be writable by this user (a bind mount keeps the
# host's owner: chown it to the image's uid, 5000 by default); a self-signed certificate on first
# start (replace it, or set acme_directory_url); the PostfixAdmin schema created or recognised;
# then the command (default: serve).
set -e
CONF="${PYMAILSRV_CONFIG:-/etc/pymailsrv/pymailsrv.conf}"
DATA=/var/lib/pymailsrv
TLS="$DATA/tls"
if [ ! -w "$DATA" ]; then
    echo "pymailsrv: fatal: $DATA is not writable by uid $(id -u); on the host: chown -R $(id -u):$(id -g) <the mounted directory>" >&2
    exit 1
fi
umask 027
if [ ! -f "$TLS/cert.pem" ]; then
    mkdir -p "$TLS"
    chmod 700 "$TLS"
    python -c 'import sys; from pymailsrv.config.tls import generate_self_signed as g; g(*sys.argv[1:])' \
        "${MAIL_HOSTNAME:-localhost}" "$TLS/cert.pem" "$TLS/key.pem"
fi
pymailsrv --config "$CONF" db upgrade
exec pymailsrv --config "$CONF" "$@"
