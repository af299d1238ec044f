"""A queue process for the crash-safety test: submits messages, prints ``ACK n`` when submit
returned (the moment SMTP would answer 250), then drains and prints ``IDLE``."""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from qfakes import MiniMaildirStore

from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.delivery.agents import AgentTable
from pymailsrv.delivery.maildir import MaildirAgent
from pymailsrv.delivery.router import DirectoryRouter
from pymailsrv.queue.base import Envelope, Recipient
from pymailsrv.queue.manager import QueueManager
from pymailsrv.queue.spool import FileSpool


async def main(root: str, start: int, count: int, fast: bool) -> None:
    # test_queue_crash.py bounds the repeats per kill by this process limit and the 2 recipients
    settings = Settings({"data_directory": root, "queue_directory": f"{root}/q", "myhostname": "crash.test",
                         "default_process_limit": "8"})
    directory = MemoryDirectory(f"{root}/vmail")
    directory.add_domain("crash.test")
    for u in range(4):
        directory.add_mailbox(f"u{u}@crash.test", maildir=f"crash.test/u{u}/")
    clock = SystemClock()
    manager = QueueManager(settings, FileSpool(f"{root}/q", clock), DirectoryRouter(settings, directory),
                           AgentTable(MaildirAgent(settings, directory, MiniMaildirStore())), clock,
                           fast_path=fast)
    await manager.start()
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with sem:
            rcpts = [Recipient(f"u{i % 4}@crash.test"), Recipient(f"u{(i + 1) % 4}@crash.test")]
            body = f"Message-ID: <{i}@crash>\nSubject: {i}\n\n" + "x" * 500 + "\n"
            await manager.submit(Envelope("s@far.test", rcpts), body.encode())
            sys.stdout.write(f"ACK {i}\n")
            sys.stdout.flush()

    await asyncio.gather(*(one(i) for i in range(start, start + count)))
    while manager.entries:
        await asyncio.sleep(0.01)
    sys.stdout.write("IDLE\n")
    sys.stdout.flush()
    await manager.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "fast"))
