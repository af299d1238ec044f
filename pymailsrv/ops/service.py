"""The main process's operations service: the metrics endpoint, the statistics page, and the
periodic update of the statistics database."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.config.settings import Listen, Settings
from pymailsrv.errors import ConfigError
from pymailsrv.log import get_logger
from pymailsrv.meter import Hub
from pymailsrv.ops import exposition, figures, page
from pymailsrv.ops.admin_auth import AdminLogin
from pymailsrv.ops.httpd import HttpServer, Request, Response, text
from pymailsrv.ops.rrd import RoundRobin

log = get_logger("master")

REALM = 'Basic realm="pymailsrv statistics", charset="UTF-8"'


class OpsService:
    def __init__(self, settings: Settings, hub: Hub, census: Callable[[], exposition.Census] | None,
                 workers: Callable[[], Sequence[exposition.WorkerState]] | None, login: AdminLogin | None) -> None:
        self.settings = settings
        self.hub = hub
        self.census = census
        self.collector = exposition.MailCollector(hub.total, census, workers)
        self.rrd = RoundRobin(settings.get_str("stats_database"))
        self.login = login
        self.hostname = settings.get_str("myhostname")
        self.interval = max(1.0, settings.get_seconds("stats_update_interval"))
        self.deltas = figures.Deltas()
        self.servers: list[HttpServer] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: Settings, hub: Hub, *, census: Callable[[], exposition.Census] | None = None,
                    workers: Callable[[], Sequence[exposition.WorkerState]] | None = None,
                    login: AdminLogin | None = None) -> OpsService | None:
        """None when metrics_listen and stats_listen are both empty. ConfigError: a port taken."""
        metrics, stats = settings.get_listen("metrics_listen"), settings.get_listen("stats_listen")
        if not metrics and not stats:
            return None
        service = cls(settings, hub, census, workers, login)
        try:
            await service.update()  # the database exists before the first page
            for name, addresses, handler in (("metrics", metrics, service.metrics),
                                             ("stats", stats, service.stats)):
                for address in addresses:
                    await service._listen(name, address, handler)
        except BaseException:
            await service.stop(final_update=False)
            raise
        service._task = asyncio.get_running_loop().create_task(service._updates())
        return service

    async def _listen(self, name: str, address: Listen, handler: Callable[[Request], Any]) -> None:
        server = HttpServer(handler, name)
        try:
            await server.start(address.host, address.port)
        except OSError as exc:
            raise ConfigError(f"{name}_listen {address}: cannot listen: {exc.strerror or exc}") from None
        self.servers.append(server)
        log.info("%s listening on %s:%d", name, server.host, server.port)

    # --- the statistics database ------------------------------------------------------------------
    def _current(self) -> dict[str, float]:
        out = {f"sessions_{p}": n for p, n in figures.sessions(self.hub.total()).items()}
        if self.census is not None:
            census = self.census()
            out.update({f"queue_{state}": float(n) for state, (n, _) in census.items()})
            out["queue_oldest"] = min((oldest for _, oldest in census.values() if oldest), default=0.0)
        return out

    async def update(self) -> None:
        """Add what was counted since the last update to the statistics database."""
        counts = self.deltas.take(figures.series_totals(self.hub.total()))
        try:
            await asyncio.to_thread(self.rrd.add, counts, time.time(), self._current())
        except Exception as exc:  # a full disk: the page goes on with what it has
            log.warning("cannot update %s: %s", self.rrd.path, exc)

    async def _updates(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.update()

    async def stop(self, *, final_update: bool = True) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for server in self.servers:
            await server.close()
        if final_update:
            await self.update()
        if self.login is not None:
            await self.login.admins.close()

    # --- the pages ------------------------------------------------------------------------------
    async def metrics(self, request: Request) -> Response:
        if request.path not in ("/metrics", "/"):
            return text(404, "Not Found")
        return Response(200, exposition.render(self.collector), exposition.CONTENT_TYPE)

    async def stats(self, request: Request) -> Response:
        if request.path not in ("/", "/index.html"):
            return text(404, "Not Found")
        if self.login is None:
            return text(403, "Forbidden")
        try:
            admin = await self.login.check(request.headers.get("authorization", ""), request.client_ip)
        except AuthUnavailable:
            return text(503, "Service Unavailable: try again later")
        if admin is None:
            response = text(401, "Unauthorized: a PostfixAdmin superadmin's name and password are needed")
            response.headers.append(("WWW-Authenticate", REALM))
            return response
        await self.update()  # the page shows what was counted up to now
        html = await asyncio.to_thread(page.render, self.rrd, self.hostname, self._current())
        return Response(200, html.encode(), "text/html; charset=utf-8",
                        [("X-Frame-Options", "DENY"), ("Content-Security-Policy",
                                                       "default-src 'none'; style-src 'unsafe-inline'")])
