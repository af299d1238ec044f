"""A minimal fast SMTP sink for the drain benchmark (run as a separate process):
accepts everything, counts messages, prints the port on stdout. Loopback only."""

from __future__ import annotations

import asyncio
import os
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    w = writer.write
    w(b"220 sink.test ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"LHLO"):
                w(b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n")
            elif verb == b"DATA":
                w(b"354 go\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                w(b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"QUIT":
                w(b"221 bye\r\n")
                break
            else:
                w(b"250 ok\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=1 << 20)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
