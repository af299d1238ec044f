"""Socket plumbing shared by the IMAP and POP3 servers (bounded reads, STARTTLS, timeouts).

Use ``start_server(handler, host, port, ssl=None)``; ``handler(conn)`` gets a ``Connection``.
"""

from pymailsrv.net.conn import Connection, ConnectionClosed, LineTooLong, PlaintextPending
from pymailsrv.net.server import Adopter, ConnectionRegistry, Server, start_server

__all__ = ["Adopter", "Connection", "ConnectionClosed", "ConnectionRegistry", "LineTooLong", "PlaintextPending",
           "Server", "start_server"]
