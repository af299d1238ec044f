"""When to ask the CA next (pure: times in, a time out).

A certificate is due ``acme_renew_before`` before it expires (or when a third of its lifetime is
left, if that is later), at once when there is none or it misses a configured name. After a
failure the next attempt waits acme_minimal_backoff_time, doubling with each failure in a row up
to acme_maximal_backoff_time (a CA's rate limits count failed validations: certbot and Let's
Encrypt advise backing off)."""

from __future__ import annotations

from dataclasses import dataclass

from pymailsrv.tls.certinfo import CertificateInfo


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    renew_before: float
    minimal_backoff: float
    maximal_backoff: float


def due_at(cert: CertificateInfo | None, names: list[str], renew_before: float) -> float:
    """When the certificate must be replaced (0: now). At most a third of its lifetime before it
    expires, so a short-lived certificate is not renewed again as soon as it is issued."""
    if cert is None or not cert.covers(names):
        return 0.0
    return cert.not_after - min(renew_before, (cert.not_after - cert.not_before) / 3)


def backoff(failures: int, policy: RenewalPolicy) -> float:
    """The wait after ``failures`` failed attempts in a row (0 for none)."""
    if failures <= 0:
        return 0.0
    return float(min(policy.minimal_backoff * 2 ** min(failures - 1, 32), policy.maximal_backoff))


def next_attempt(cert: CertificateInfo | None, names: list[str], policy: RenewalPolicy, *,
                 failures: int, last_attempt: float) -> float:
    """When to try next: when due, but not before the backoff after the last failure ends."""
    at = due_at(cert, names, policy.renew_before)
    if failures:
        at = max(at, last_attempt + backoff(failures, policy))
    return at
