"""Where a service listens: a TCP address or a UNIX socket path, as Postfix and Dovecot name them.

Implementation notes:
- ``127.0.0.1:24``, ``[::1]:24``, ``inet:127.0.0.1:24`` and ``24`` are TCP; ``unix:/path`` and
  ``/path`` are UNIX sockets (Postfix's ``lmtp:unix:…``/``check_policy_service unix:…`` forms,
  Dovecot's ``unix_listener`` paths). Parsing is pure; ``listen_endpoint`` does the I/O.
- A UNIX socket left over from an earlier run is replaced (as Dovecot's master does); anything
  else at that path is not touched. The mode (and group) are set before the first connection is
  accepted, so there is no window with the umask's permissions.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str = ""  # TCP: "" = every interface
    port: int = 0
    path: str = ""  # UNIX socket

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    def __str__(self) -> str:
        if self.path:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """One endpoint; raises ValueError with a message naming the accepted forms."""
    item = text.strip()
    if item.startswith("unix:"):
        item = item[5:]
        if not item.startswith("/"):
            raise ValueError(f'bad socket path "{text}" (an absolute path)')
    if item.startswith("/"):
        return Endpoint(path=item)
    if item.startswith("inet:"):
        item = item[5:]
    host, sep, port = item.rpartition(":")
    if not sep:
        host, port = "", item
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'bad listen address "{text}" (host:port, [ipv6]:port, port or unix:/path)')
    return Endpoint(host=host, port=int(port))


def parse_endpoints(items: list[str]) -> list[Endpoint]:
    return [parse_endpoint(item) for item in items if item.strip()]


def _replace_stale_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


async def listen_endpoint(factory: Callable[[], asyncio.Protocol], endpoint: Endpoint, *,
                          mode: int = 0o660, group: str = "", backlog: int = 100) -> asyncio.Server:
    """Serve ``factory``'s protocols on ``endpoint``; raises OSError (KeyError for an unknown
    ``group``)."""
    loop = asyncio.get_running_loop()
    if not endpoint.is_unix:
        return await loop.create_server(factory, endpoint.host or None, endpoint.port, reuse_address=True,
                                        backlog=backlog)
    _replace_stale_socket(endpoint.path)
    server = await loop.create_unix_server(factory, endpoint.path, backlog=backlog, start_serving=False)
    try:
        if group:
            os.chown(endpoint.path, -1, grp.getgrnam(group).gr_gid)
        os.chmod(endpoint.path, mode)
        await server.start_serving()
    except BaseException:
        server.close()
        raise
    return server


def endpoint_address(server: asyncio.Server) -> str:
    """What a started server listens on, for the log (the real port after port 0)."""
    name = server.sockets[0].getsockname()
    if isinstance(name, str):
        return f"unix:{name}"
    host, port = name[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
