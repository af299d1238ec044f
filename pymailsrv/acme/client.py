"""Issuing and revoking a certificate with an ACME CA (RFC 8555), on the acme library (the one
certbot is built on: JWS signing, nonces and their badNonce retry, the order/authorization/
finalize flow, all kept current with the CA's changes by its maintainers).

The library is synchronous (requests): this runs in a thread of the main process, never on its
event loop. Every call starts from the directory URL and finds the account by its key (a
newAccount request with a known key returns the existing account, RFC 8555 §7.3.1), so no
account URL is kept that a CA reset could leave stale.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from josepy.errors import Error as JoseError

import pymailsrv
from pymailsrv.acme.challenges import (
    ChallengeBoard,
    TlsAlpn01,
    alpn_certificate_pem,
    alpn_context,
)
from pymailsrv.acme.store import AcmeStore, new_private_key_pem
from pymailsrv.errors import PymailsrvError

log = logging.getLogger("pymailsrv.acme")

HTTP_01 = "http-01"
TLS_ALPN_01 = "tls-alpn-01"


class AcmeError(PymailsrvError):
    """The CA refused or failed (the text says what it said), or could not be reached."""


@dataclass(frozen=True, slots=True)
class AcmeOptions:
    directory_url: str
    challenges: tuple[str, ...]  # the types we can answer, preferred first
    ca_file: str = ""
    email: str = ""
    timeout: float = 120.0  # for the validations and the finalization of one order


@dataclass(frozen=True, slots=True)
class Issued:
    key_pem: bytes
    fullchain_pem: bytes


class AcmeClient:
    def __init__(self, options: AcmeOptions, store: AcmeStore, board: ChallengeBoard) -> None:
        self.options = options
        self.store = store
        self.board = board

    def issue(self, names: Sequence[str]) -> Issued:
        """A certificate for ``names`` (the first is its subject) with a new key. Raises AcmeError."""
        with _acme_errors():
            acme = self._connect()
            key_pem = new_private_key_pem()
            order = acme.new_order(crypto_util.make_csr(key_pem, list(names)))
            tokens: list[str] = []
            domains: list[str] = []
            try:
                for authz in order.authorizations:
                    if authz.body.status != messages.STATUS_VALID:  # a CA may reuse valid ones
                        self._answer(acme, authz, tokens, domains)
                deadline = datetime.datetime.now() + datetime.timedelta(seconds=self.options.timeout)
                order = acme.poll_and_finalize(order, deadline)
            finally:
                self.board.withdraw(tokens=tokens, domains=domains)
            return Issued(key_pem, order.fullchain_pem.encode("ascii"))

    def revoke(self, cert_pem: bytes, reason: int = 0) -> None:
        """Revoke the (first) certificate of ``cert_pem`` with the account that ordered it
        (RFC 8555 §7.6; reason codes of RFC 5280 §5.3.1). Raises AcmeError."""
        with _acme_errors():
            self._connect().revoke(x509.load_pem_x509_certificate(cert_pem), reason)

    def _connect(self) -> client.ClientV2:
        key = self.store.account_key()
        # requests takes a CA bundle path for ``verify``; acme hands verify_ssl to it unchanged
        verify: Any = self.options.ca_file or True
        net = client.ClientNetwork(key, verify_ssl=verify, user_agent=f"pymailsrv/{pymailsrv.__version__}")
        acme = client.ClientV2(client.ClientV2.get_directory(self.options.directory_url, net), net)
        registration = messages.NewRegistration.from_data(email=self.options.email or None,
                                                          terms_of_service_agreed=True)
        try:
            acme.new_account(registration)
        except errors.ConflictError as known:  # this key's account exists: use it
            net.account = messages.RegistrationResource(uri=known.location, body=messages.Registration())
        return acme

    def _answer(self, acme: client.ClientV2, authz: messages.AuthorizationResource, tokens: list[str],
                domains: list[str]) -> None:
        """Publish the answer to the preferred challenge of ``authz``, then tell the CA to check it."""
        domain = str(authz.body.identifier.value)
        offered = {challb.chall.typ: challb for challb in authz.body.challenges}
        kind = next((kind for kind in self.options.challenges if kind in offered), None)
        if kind is None:
            raise AcmeError(f"{domain}: the CA offers {', '.join(sorted(offered))}; "
                            f"we answer {', '.join(self.options.challenges)}")
        challb = offered[kind]
        chall = challb.chall
        assert isinstance(chall, challenges.KeyAuthorizationChallenge)
        response, validation = chall.response_and_validation(acme.net.key)
        if isinstance(chall, TlsAlpn01):
            pem = alpn_certificate_pem(domain, validation)
            self.board.publish_alpn(domain, alpn_context(pem, self.store.directory))
            domains.append(domain)
        else:
            token = chall.encode("token")
            self.board.publish_http(token, validation)
            tokens.append(token)
        log.info("%s: answering %s", domain, kind)
        acme.answer_challenge(challb, response)


@contextlib.contextmanager
def _acme_errors() -> Iterator[None]:
    """Turns what the library and requests raise into AcmeError with the CA's own words."""
    try:
        yield
    except AcmeError:
        raise
    except errors.ValidationError as exc:
        raise AcmeError(_validation_failures(exc)) from exc
    except errors.IssuanceError as exc:
        raise AcmeError(f"the CA did not issue the certificate: {exc.error}") from exc
    except errors.TimeoutError as exc:
        raise AcmeError("the CA did not finish validating or issuing in time") from exc
    except (errors.Error, JoseError, OSError, ValueError) as exc:  # requests' errors are OSErrors
        raise AcmeError(str(exc) or type(exc).__name__) from exc


def _validation_failures(exc: errors.ValidationError) -> str:
    failed = [f"{authz.body.identifier.value}: {challb.chall.typ}: {challb.error}"
              for authz in exc.failed_authzrs for challb in authz.body.challenges if challb.error is not None]
    return "validation failed: " + "; ".join(failed)
