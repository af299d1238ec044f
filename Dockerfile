# pymailsrv as a container: one non-root user, one volume for everything it keeps
# (/var/lib/pymailsrv: Maildirs, queue, SQLite, ACME state, the self-signed certificate), and a
# HEALTHCHECK that asks the server itself (`pymailsrv doctor --quick`: the control socket and
# every listener answer). Ports below 1024 need no capability inside a container: Docker (20.10+)
# and Podman set net.ipv4.ip_unprivileged_port_start=0 in its network namespace
# (docker-compose.yml sets it too); with --network=host, map other ports in the configuration.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYMAILSRV_CONFIG=/etc/pymailsrv/pymailsrv.conf

# uid/gid 5000: the "vmail" user of the Postfix + Dovecot guides, so their Maildirs can be
# mounted as they are
ARG PYMAILSRV_UID=5000
ARG PYMAILSRV_GID=5000
RUN groupadd --system --gid "${PYMAILSRV_GID}" pymailsrv \
    && useradd --system --uid "${PYMAILSRV_UID}" --gid pymailsrv --home-dir /var/lib/pymailsrv \
       --no-create-home --shell /usr/sbin/nologin pymailsrv \
    && install -d -o pymailsrv -g pymailsrv -m 0750 /var/lib/pymailsrv

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pymailsrv ./pymailsrv
# this project itself: its dependencies are bounded in pyproject.toml
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[postgres]'
COPY docker/entrypoint.sh /usr/local/bin/pymailsrv-entrypoint
COPY docker/pymailsrv.conf /etc/pymailsrv/pymailsrv.conf

USER ${PYMAILSRV_UID}:${PYMAILSRV_GID}
WORKDIR /var/lib/pymailsrv
VOLUME ["/var/lib/pymailsrv"]
EXPOSE 25 587 465 143 993 110 995
HEALTHCHECK --interval=30s --timeout=30s --start-period=60s --retries=3 \
    CMD ["pymailsrv", "doctor", "--quick"]
ENTRYPOINT ["pymailsrv-entrypoint"]
CMD ["serve"]
