"""Dovecot's services for Postfix, in Dovecot's wire formats: the authentication protocol that
Postfix's ``smtpd_sasl_type = dovecot`` speaks, and the quota-status policy service."""

from __future__ import annotations

from collections.abc import Sequence

from pymailsrv.log import get_logger
from pymailsrv.net.conn import Connection
from pymailsrv.net.networks import Network, in_networks

log = get_logger("master")


def client_allowed(conn: Connection, networks: Sequence[Network], service: str) -> bool:
    """Over TCP only clients in ``networks`` (mynetworks: the MTAs in front) may use these
    services: the auth socket would be a password oracle and quota-status a list of users for
    anyone else. A UNIX socket's client has no address; its permissions guard it."""
    if not conn.peer_ip or in_networks(conn.peer_ip, networks):
        return True
    log.warning("%s: connection from [%s] refused: not in mynetworks", service, conn.peer_ip)
    return False
