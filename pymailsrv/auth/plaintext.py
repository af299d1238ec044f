"""May a client send a password in the clear here? One rule for SMTP AUTH, IMAP and POP3.

Dovecot's ``disable_plaintext_auth``: when it is on, a plaintext login (IMAP LOGIN, POP3
USER/PASS, the PLAIN and LOGIN SASL mechanisms) is allowed only on a "secured" connection: over
TLS, from the same host (loopback, or the address the client connected to), or from
``login_trusted_networks``. ``mynetworks`` does not count: it says who may relay, not whose
network nobody can listen on.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymailsrv.config.settings import Settings
from pymailsrv.log import get_logger
from pymailsrv.net.networks import Network, in_networks, is_loopback, parse_networks, same_address

log = get_logger("auth")


@dataclass(frozen=True, slots=True)
class PlaintextRule:
    disable_plaintext_auth: bool = True
    trusted_networks: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> PlaintextRule:
        return cls(settings.get_bool("disable_plaintext_auth"), trusted_networks(settings))

    def allows(self, *, tls: bool, remote_ip: str, local_ip: str = "") -> bool:
        if tls or not self.disable_plaintext_auth:
            return True
        return (is_loopback(remote_ip) or same_address(remote_ip, local_ip)
                or in_networks(remote_ip, self.trusted_networks))


def trusted_networks(settings: Settings) -> tuple[Network, ...]:
    """``login_trusted_networks``; what is not a network is skipped with a warning."""
    nets, bad = parse_networks(settings.get_list("login_trusted_networks"))
    for item in bad:
        log.warning('login_trusted_networks: ignoring "%s": not a network', item)
    return tuple(nets)

