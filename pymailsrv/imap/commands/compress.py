"""COMPRESS (RFC 4978): DEFLATE both ways from the byte after the tagged OK."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.imap.commands.base import Done, Server
from pymailsrv.imap.grammar import Command
from pymailsrv.net.transform import Deflate

if TYPE_CHECKING:
    from pymailsrv.imap.session import Session


async def compress(srv: Server, s: Session, cmd: Command) -> Done:
    if cmd.args != "DEFLATE":
        raise ClientSyntaxError("Unknown compression mechanism.")
    if s.conn.transform is not None:
        raise Refusal("Compression already active.", code="COMPRESSIONACTIVE")
    s.write(f"{cmd.tag} OK Begin compression.\r\n".encode())
    await s.flush()
    # what the client sent after the command (pipelined) is compressed already (RFC 4978 §3)
    s.conn.add_transform(Deflate(), s.parser.take_buffered())
    return Done(sent=True)
