"""``pymailsrv cert status|renew|revoke``: what the listeners serve and when it expires, a renewal
now, a revocation.

With the server running, ``renew`` asks it (SIGUSR2: its ACME client holds the challenge ports)
and waits for the outcome in state.json; without it, this process answers the challenges
itself. ``revoke`` revokes the ACME certificate with the account's key, sets it aside and has a
running server reload (tls_cert_file serves meanwhile) and request a new one.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable
from typing import TextIO

from pymailsrv.acme import REVOCATION_REASONS
from pymailsrv.acme.challenges import ChallengeBoard
from pymailsrv.acme.client import AcmeClient
from pymailsrv.acme.schedule import due_at
from pymailsrv.acme.service import AcmeService, acme_options, certificate_names, renewal_policy, when
from pymailsrv.acme.store import REVOKED_SUFFIX, AcmeStore
from pymailsrv.config.settings import Settings
from pymailsrv.errors import PymailsrvError
from pymailsrv.tls.certinfo import CertificateInfo, read_certificate
from pymailsrv.tls.files import CERTIFICATE, acme_directory, acme_enabled, issued_certificate
from pymailsrv.tls.sni import read_table

SignalMaster = Callable[[int], "int | None"]  # sends a signal to the running server: its pid, or None


def cli(settings: Settings, args: argparse.Namespace, *, signal_master: SignalMaster, out: TextIO = sys.stdout) -> int:
    if args.action == "status":
        return status(settings, out)
    if not acme_enabled(settings):
        raise PymailsrvError("ACME is off: set acme_directory_url")
    if args.action == "renew":
        return renew(settings, signal_master, timeout=args.timeout, out=out)
    return revoke(settings, signal_master, reason=args.reason, out=out)


# --- status ----------------------------------------------------------------------------------------
def status(settings: Settings, out: TextIO) -> int:
    now = time.time()
    if acme_enabled(settings):
        store = AcmeStore(acme_directory(settings))
        names = certificate_names(settings)
        print(f"ACME: {settings.get_str('acme_directory_url')} for {', '.join(names)}", file=out)
        cert = store.certificate()
        _describe(store.path(CERTIFICATE), cert, now, out)
        if cert is not None:
            print(f"  renewal due: {when(due_at(cert, names, renewal_policy(settings).renew_before) or now)}", file=out)
        state = store.state()
        if state.last_attempt:
            outcome = f"failed ({state.failures} in a row): {state.last_error}" if state.failures else "succeeded"
            print(f"  last attempt: {when(state.last_attempt)}, {outcome}", file=out)
        if state.failures:
            print(f"  next attempt: {when(state.next_attempt)}", file=out)
    else:
        print("ACME: off (acme_directory_url is empty)", file=out)
    served = "not served: the ACME certificate is" if issued_certificate(settings) else "served"
    for param in ("tls_cert_file", "smtpd_tls_cert_file"):
        path = settings.get_str(param)
        if path and (param == "tls_cert_file" or path != settings.get_str("tls_cert_file")):
            print(f"{param} ({served}):", file=out)
            _describe(path, read_certificate(path), now, out)
    for spec in settings.get_list("tls_server_sni_maps"):
        for name, files in read_table(spec).items():
            print(f"SNI {name} ({spec}):", file=out)
            for path in files:
                _describe(path, read_certificate(path), now, out)
    return 0


def _describe(path: str, cert: CertificateInfo | None, now: float, out: TextIO) -> None:
    if cert is None:
        print(f"  {path}: no certificate", file=out)
        return
    days = (cert.not_after - now) / 86400
    left = f"{days:.0f} days left" if days >= 0 else "EXPIRED"
    print(f"  {path}\n  names: {', '.join(cert.names) or cert.subject}\n"
          f"  issuer: {cert.issuer}{' (self-signed)' if cert.self_signed else ''}, serial {cert.serial_hex()}\n"
          f"  valid until: {when(cert.not_after)} ({left})", file=out)


# --- renew ----------------------------------------------------------------------------------------
def renew(settings: Settings, signal_master: SignalMaster, *, timeout: float, out: TextIO) -> int:
    store = AcmeStore(acme_directory(settings))
    started = time.time()
    pid = signal_master(signal.SIGUSR2)
    if pid is None:
        print("pymailsrv is not running: answering the challenges from this process", file=out)
        ok = asyncio.run(_renew_here(settings))
    else:
        print(f"asked the server (pid {pid}) to renew; waiting", file=out, flush=True)
        ok = _wait_for_attempt(store, started, timeout)
    state = store.state()
    if ok and not state.failures:
        cert = store.certificate()
        assert cert is not None
        print(f"renewed: serial {cert.serial_hex()}, valid until {when(cert.not_after)}", file=out)
        return 0
    print(f"renewal failed: {state.last_error or 'no answer from the server'}", file=out)
    return 1


async def _renew_here(settings: Settings) -> bool:
    service = await AcmeService.start(settings, schedule=False)
    assert service is not None
    try:
        return await service.attempt()
    finally:
        await service.stop()


def _wait_for_attempt(store: AcmeStore, started: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.state().last_attempt >= started:
            return True
        time.sleep(0.2)
    return False


# --- revoke ---------------------------------------------------------------------------------------
def revoke(settings: Settings, signal_master: SignalMaster, *, reason: str, out: TextIO) -> int:
    store = AcmeStore(acme_directory(settings))
    pem = store.certificate_pem()
    cert = store.certificate()
    if pem is None or cert is None:
        raise PymailsrvError(f"no ACME certificate to revoke in {store.directory}")
    AcmeClient(acme_options(settings), store, ChallengeBoard()).revoke(pem, REVOCATION_REASONS[reason])
    store.set_aside()
    print(f"revoked: serial {cert.serial_hex()} ({', '.join(cert.names)}); kept as "
          f"{CERTIFICATE + REVOKED_SUFFIX}", file=out)
    pid = signal_master(signal.SIGHUP)
    if pid is None:
        print("pymailsrv is not running: `pymailsrv serve` or `pymailsrv cert renew` gets a new certificate",
              file=out)
        return 0
    signal_master(signal.SIGUSR2)
    print(f"the server (pid {pid}) reloads without it and requests a new certificate", file=out)
    return 0
