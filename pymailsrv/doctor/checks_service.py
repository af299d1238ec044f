"""Is it serving? The queue manager answers on its control socket, and every listener answers
with its protocol's greeting (over TLS for the implicit-TLS ones). With the server stopped,
each listen address is instead checked to be free to bind, as ``postfix check`` cannot."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl

from pymailsrv.config.settings import Listen, Settings
from pymailsrv.doctor.report import Report
from pymailsrv.queue.admin import send_control, socket_path

TIMEOUT = 8.0  # each wait; the probes run side by side (a HEALTHCHECK allows 30s)
# the first bytes each service greets with, and how to leave politely; others: a TCP connect
GREETINGS = {
    "smtpd": (b"220", b"QUIT\r\n"), "submission": (b"220", b"QUIT\r\n"), "smtps": (b"220", b"QUIT\r\n"),
    "reinject": (b"220", b"QUIT\r\n"), "lmtp": (b"220", b"QUIT\r\n"),
    "imap": (b"* OK", b"a LOGOUT\r\n"), "imaps": (b"* OK", b"a LOGOUT\r\n"),
    "pop3": (b"+OK", b"QUIT\r\n"), "pop3s": (b"+OK", b"QUIT\r\n"),
}
IMPLICIT_TLS = {"smtps", "imaps", "pop3s"}
ON_DEMAND = {"acme_http", "acme_tls"}  # listen only while the CA validates a challenge


def listeners(settings: Settings) -> list[tuple[str, Listen]]:
    """(service, address) of every ``*_listen`` parameter that is set, the on-demand ones aside."""
    found: list[tuple[str, Listen]] = []
    for name in settings.names():
        if not name.endswith("_listen") or settings.param(name).type != "listen":
            continue
        service = name.removesuffix("_listen")
        if service not in ON_DEMAND:
            found.extend((service, listen) for listen in settings.get_listen(name))
    return found


async def check_service(settings: Settings, report: Report, *, quick: bool) -> bool:
    """True when the server is running (its queue manager answers)."""
    path = socket_path(settings)
    try:
        answer = await asyncio.wait_for(send_control(path, "status", "", timeout=TIMEOUT), TIMEOUT + 1)
    except (TimeoutError, ValueError):  # a socket that accepts and says nothing, or garbage
        answer = {"ok": False, "text": "no answer"}
    running = answer is not None
    if answer is None and os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        # the socket is the server user's (0600): whether it runs, the listeners tell
        running = True
        report.warning("queue manager", f"{path}: permission denied (doctor runs as uid {os.geteuid()}): "
                       "run it as the server's user or root")
    elif answer is None:
        (report.error if quick else report.warning)("queue manager", f"not running: nothing answers on {path}",
                                                     ["pymailsrv serve  (or: systemctl start pymailsrv)"], "fix")
    elif answer.get("ok"):
        report.ok("queue manager", f"answers on {path}: {answer.get('text', '')}")
    else:
        report.error("queue manager", f"{path}: {answer.get('text', 'bad answer')}")
    checks = [_probe(settings, report, service, listen) if running else _bindable(report, service, listen)
              for service, listen in listeners(settings)]
    await asyncio.gather(*checks)
    return running


def _connect_host(listen: Listen) -> str:
    if listen.host in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    return "::1" if listen.host == "::" else listen.host


async def _probe(settings: Settings, report: Report, service: str, listen: Listen) -> None:
    subject = f"{service} {listen}"
    if listen.port == 0:
        report.info(subject, "port 0 (any free port): not checked")
        return
    context = None
    if service in IMPLICIT_TLS:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the certificate checks judge the certificate
    expect, leave = GREETINGS.get(service, (b"", b""))
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(_connect_host(listen), listen.port, ssl=context,
                                    server_hostname=(settings.get_str("myhostname") or None) if context else None),
            TIMEOUT)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        report.error(subject, f"does not answer: {getattr(exc, 'strerror', None) or exc or 'timeout'}")
        return
    try:
        greeting = await asyncio.wait_for(reader.readline(), TIMEOUT) if expect else b""
        if expect and not greeting.startswith(expect):
            report.error(subject, f"answers {greeting[:60]!r}, not {expect.decode()}")
            return
        writer.write(leave)
        text = greeting.decode("ascii", "replace").strip()[:60]
        report.ok(subject, f"answers{' over TLS' if context else ''}: {text}" if expect else "accepts connections")
    except (OSError, TimeoutError) as exc:
        report.error(subject, f"accepts but does not greet: {exc or 'timeout'}")
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2.0)
        except (OSError, TimeoutError, ssl.SSLError):
            pass


async def _bindable(report: Report, service: str, listen: Listen) -> None:
    subject = f"{service} {listen}"
    if listen.port == 0:
        report.info(subject, "port 0 (any free port): not checked")
        return
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        sock.bind((listen.host, listen.port))
        sock.listen(1)
        report.ok(subject, "free: pymailsrv can listen here")
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            report.error(subject, "in use by another program (another MTA or IMAP server?)",
                         [f"ss -ltnp 'sport = :{listen.port}'  (to see which)"], label="fix")
        elif exc.errno == errno.EACCES:
            report.error(subject, "ports below 1024 need root or CAP_NET_BIND_SERVICE"
                         + (f" (doctor runs as uid {os.geteuid()})" if os.geteuid() else ""))
        elif exc.errno == errno.EADDRNOTAVAIL:
            report.error(subject, f"{listen.host} is not an address of this host")
        else:
            report.error(subject, f"cannot listen: {exc.strerror}")
    finally:
        sock.close()
