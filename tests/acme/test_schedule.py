"""When the ACME client asks the CA next: due 30 days before expiry, at once without a
certificate or when a name is missing, backoff doubling after failures up to its maximum."""

from __future__ import annotations

from pymailsrv.acme.schedule import RenewalPolicy, backoff, due_at, next_attempt
from pymailsrv.tls.certinfo import CertificateInfo

DAY = 86400.0
POLICY = RenewalPolicy(renew_before=30 * DAY, minimal_backoff=600.0, maximal_backoff=DAY)
NOW = 1_800_000_000.0


def _cert(*names: str, days_left: float = 90.0, lifetime: float = 90.0) -> CertificateInfo:
    return CertificateInfo(subject=names[0], names=names, issuer="Test CA", serial=1,
                           not_before=NOW + (days_left - lifetime) * DAY, not_after=NOW + days_left * DAY)


def test_due_thirty_days_before_expiry() -> None:
    cert = _cert("mx.example.test")
    assert due_at(cert, ["mx.example.test"], POLICY.renew_before) == NOW + 60 * DAY
    assert due_at(_cert("mx.example.test", days_left=10), ["mx.example.test"], POLICY.renew_before) < NOW


def test_a_short_lived_certificate_is_due_with_a_third_of_its_lifetime_left() -> None:
    six_days = _cert("mx.example.test", days_left=6, lifetime=6)  # just issued
    assert due_at(six_days, ["mx.example.test"], POLICY.renew_before) == NOW + 4 * DAY


def test_due_at_once_without_a_certificate_or_with_a_name_missing() -> None:
    assert due_at(None, ["mx.example.test"], POLICY.renew_before) == 0
    cert = _cert("mx.example.test")
    assert due_at(cert, ["mx.example.test", "imap.example.test"], POLICY.renew_before) == 0
    assert due_at(cert, ["MX.example.test."], POLICY.renew_before) == NOW + 60 * DAY  # names compare folded


def test_backoff_doubles_up_to_the_maximum() -> None:
    assert [backoff(n, POLICY) for n in range(7)] == [0, 600, 1200, 2400, 4800, 9600, 19200]
    assert backoff(9, POLICY) == DAY and backoff(1000, POLICY) == DAY


def test_next_attempt_waits_out_the_backoff_but_not_past_due() -> None:
    names = ["mx.example.test"]
    assert next_attempt(None, names, POLICY, failures=0, last_attempt=0) == 0
    assert next_attempt(None, names, POLICY, failures=3, last_attempt=NOW) == NOW + 2400
    # a failed early renewal of a certificate that is not yet due waits until it is due
    assert next_attempt(_cert(*names), names, POLICY, failures=1, last_attempt=NOW) == NOW + 60 * DAY
