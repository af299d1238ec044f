"""The ACME client of the main process: keeps a certificate for $myhostname and $acme_domains.

Implementation notes:
- It runs in the main process only (workers never talk to the CA). The conversation with the
  CA runs in a thread; the challenge responders and this schedule run on the event loop.
- A new certificate reaches the listeners through the reload path (``on_installed``, the same
  as SIGHUP): every worker, or the in-process servers, are started anew and load the
  certificate file, while sessions in progress finish on the old ones. Nothing swaps contexts
  inside live processes, so one code path loads certificates, at start and on reload.
- The schedule is checked at least hourly and whenever the configuration is reloaded or a
  renewal is asked for (SIGUSR2, ``pymailsrv cert renew``); its state (failures in a row, last
  error, next attempt) is kept in state.json so a restart keeps the backoff.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable

from pymailsrv.acme.challenges import ChallengeBoard
from pymailsrv.acme.client import HTTP_01, TLS_ALPN_01, AcmeClient, AcmeError, AcmeOptions
from pymailsrv.acme.responders import close_responders, start_responders
from pymailsrv.acme.schedule import RenewalPolicy, next_attempt
from pymailsrv.acme.store import AcmeState, AcmeStore
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError
from pymailsrv.log import get_logger
from pymailsrv.net import Server
from pymailsrv.tls.certinfo import CertificateInfo
from pymailsrv.tls.files import acme_directory, acme_enabled

log = get_logger("acme")

CHECK_INTERVAL = 3600.0


def certificate_names(settings: Settings) -> list[str]:
    """$myhostname, then $acme_domains, each once (lower case)."""
    names: list[str] = []
    for name in [settings.get_str("myhostname"), *settings.get_list("acme_domains")]:
        name = name.lower().rstrip(".")
        if name and name not in names:
            names.append(name)
    return names


def renewal_policy(settings: Settings) -> RenewalPolicy:
    return RenewalPolicy(settings.get_seconds("acme_renew_before"), settings.get_seconds("acme_minimal_backoff_time"),
                         settings.get_seconds("acme_maximal_backoff_time"))


def acme_options(settings: Settings) -> AcmeOptions:
    kinds = ((HTTP_01,) if settings.get_listen("acme_http_listen") else ()) + (
        (TLS_ALPN_01,) if settings.get_listen("acme_tls_listen") else ())
    return AcmeOptions(settings.get_str("acme_directory_url"), kinds, ca_file=settings.get_str("acme_ca_file"),
                       email=settings.get_str("acme_email"))


def when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class AcmeService:
    def __init__(self, settings: Settings, store: AcmeStore, board: ChallengeBoard, responders: list[Server],
                 on_installed: Callable[[], None], clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.board = board
        self.responders = responders
        self.on_installed = on_installed
        self.clock = clock
        self._wake = asyncio.Event()
        self._forced = False
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: Settings, on_installed: Callable[[], None] = lambda: None, *,
                    clock: Clock | None = None, schedule: bool = True) -> AcmeService | None:
        """Start the challenge responders and (``schedule``) the renewal loop; None when ACME is
        off. Raises ConfigError when no challenge can be answered, OSError when a listener
        cannot bind."""
        if not acme_enabled(settings):
            return None
        http, tls = settings.get_listen("acme_http_listen"), settings.get_listen("acme_tls_listen")
        if not http and not tls:
            raise ConfigError("acme_directory_url is set but acme_http_listen and acme_tls_listen are both empty")
        store = AcmeStore(acme_directory(settings))
        await asyncio.to_thread(store.ensure_directory)
        board = ChallengeBoard()
        service = cls(settings, store, board, await start_responders(board, http, tls), on_installed,
                      clock or SystemClock())
        if schedule:
            service._task = asyncio.get_running_loop().create_task(service._run())
        return service

    def reconfigure(self, settings: Settings) -> None:
        """A reload: names and timings of the new configuration. Another acme_directory_url
        (or none) and other listen addresses need a restart; until then the old one stays."""
        if settings.get_str("acme_directory_url") == self.settings.get_str("acme_directory_url"):
            self.settings = settings
        self._wake.set()

    def renew_now(self) -> None:
        """Renew at once, whether due or not (SIGUSR2)."""
        log.info("renewal requested")
        self._forced = True
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await close_responders(self.responders)

    async def _run(self) -> None:
        while True:
            try:
                wait = await self._seconds_until_due()
                if wait > 0 and not self._forced:
                    await self._sleep(min(wait, CHECK_INTERVAL))
                    continue
                self._forced = False
                await self.attempt()
            except Exception:  # an unreadable or unwritable file: said, and tried again later
                log.exception("certificate schedule")
                await self._sleep(renewal_policy(self.settings).minimal_backoff)

    async def _sleep(self, seconds: float) -> None:
        """Until ``seconds`` pass on the clock or the schedule is woken (a reload, SIGUSR2)."""
        waits = [asyncio.ensure_future(self.clock.sleep(seconds)), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        self._wake.clear()

    async def _seconds_until_due(self) -> float:
        cert = await asyncio.to_thread(self.store.certificate)
        state = await asyncio.to_thread(self.store.state)
        at = next_attempt(cert, certificate_names(self.settings), renewal_policy(self.settings),
                          failures=state.failures, last_attempt=state.last_attempt)
        return at - self.clock.time()

    async def attempt(self) -> bool:
        """Ask the CA for a certificate now; install it and reload on success. Records the
        outcome in state.json; True when a certificate was installed."""
        names = certificate_names(self.settings)
        client = AcmeClient(acme_options(self.settings), self.store, self.board)
        state = await asyncio.to_thread(self.store.state)
        state.last_attempt = self.clock.time()
        log.info("requesting a certificate for %s from %s", ", ".join(names), client.options.directory_url)
        try:
            issued = await asyncio.to_thread(client.issue, names)
            info = await asyncio.to_thread(self.store.install, issued.key_pem, issued.fullchain_pem)
        except Exception as exc:
            if not isinstance(exc, AcmeError):
                log.exception("certificate request failed")
            self._failed(state, await asyncio.to_thread(self.store.certificate), names, str(exc) or type(exc).__name__)
            await asyncio.to_thread(self.store.save_state, state)
            return False
        state.failures, state.last_error, state.last_success = 0, "", state.last_attempt
        state.next_attempt = next_attempt(info, names, renewal_policy(self.settings), failures=0, last_attempt=0)
        log.info("certificate for %s installed: serial %s, issuer \"%s\", valid until %s; renewal from %s",
                 ", ".join(names), info.serial_hex(), info.issuer, when(info.not_after), when(state.next_attempt))
        self.on_installed()
        await asyncio.to_thread(self.store.save_state, state)
        return True

    def _failed(self, state: AcmeState, current: CertificateInfo | None, names: list[str], error: str) -> None:
        state.failures += 1
        state.last_error = error
        state.next_attempt = next_attempt(current, names, renewal_policy(self.settings), failures=state.failures,
                                          last_attempt=state.last_attempt)
        log.error("certificate for %s not issued (failure %d in a row): %s; next attempt %s",
                  ", ".join(names), state.failures, error, when(state.next_attempt))
