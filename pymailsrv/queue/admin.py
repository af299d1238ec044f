"""``pymailsrv queue list|flush|delete|hold|release|requeue`` (Postfix's mailq/postqueue/postsuper).

A running server is reached through the unix control socket ``queue_directory/qmgr.sock`` (one
JSON line each way); when nothing answers there, the commands act on the spool files directly.
``list`` always reads the files: they carry every state and the last deferral reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any, TextIO

from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.errors import NotFound
from pymailsrv.log import get_logger
from pymailsrv.queue.base import STATES, QueueFile
from pymailsrv.queue.control import short_socket_path
from pymailsrv.queue.spool import FileSpool

log = get_logger("postsuper")

SOCKET_NAME = "qmgr.sock"
_MARK = {"active": "*", "hold": "!", "deferred": " "}


def socket_path(settings: Settings) -> str:
    return os.path.join(settings.get_str("queue_directory"), SOCKET_NAME)


# --- listing -------------------------------------------------------------------------------------
def pending_lines(qf: QueueFile) -> list[tuple[str, str]]:
    """(recipient, last reason) for every recipient not finished yet."""
    finished = {i for i, _ in qf.done}
    out = []
    for i, r in enumerate(qf.envelope.recipients):
        if i in finished and i not in qf.last:
            continue
        out.append((r.address, qf.last.get(i, ("", ""))[1]))
    return out


def mailq(spool: FileSpool) -> str:
    """The queue in mailq / ``postqueue -p`` format."""
    files = sorted(spool.scan(quarantine=False), key=lambda q: q.queue_id)
    if not files:
        return "Mail queue is empty\n"
    lines = ["-Queue ID-      --Size-- ----Arrival Time---- -Sender/Recipient-------"]
    total = 0
    for qf in files:
        total += qf.size
        arrival = time.strftime("%a %b %d %H:%M:%S", time.localtime(qf.envelope.arrival))
        sender = qf.envelope.sender or "MAILER-DAEMON"
        lines.append(f"{qf.queue_id}{_MARK.get(qf.state, ' ')} {qf.size:>8} {arrival}  {sender}")
        shown_reason = ""
        for rcpt, reason in pending_lines(qf):
            if reason and reason != shown_reason:
                lines.append(f"{'':>16}({reason})")
                shown_reason = reason
            lines.append(f"{'':>47}{rcpt}")
        lines.append("")
    kb = (total + 1023) // 1024
    n = len(files)
    lines.append(f"-- {kb} Kbytes in {n} Request{'s' if n != 1 else ''}.")
    return "\n".join(lines) + "\n"


# --- acting on a stopped server ------------------------------------------------------------------
async def offline(spool: FileSpool, command: str, arg: str) -> tuple[bool, str]:
    """The control commands applied to the files (no server running)."""
    if command == "flush":
        ids = [arg] if arg else sorted(os.listdir(spool.path_of("deferred")))
        n = 0
        for qid in ids:
            if spool.locate(qid) == "deferred":
                await spool.move(qid, "deferred", "active")
                n += 1
            elif arg and spool.locate(qid) is None:
                return False, f"{arg}: no such message"
        return True, f"{n} message(s) scheduled for delivery"
    targets: list[tuple[str, str]] = []
    if arg == "ALL":
        targets = [(q.queue_id, q.state) for q in spool.scan(quarantine=False)]
    if arg != "ALL":
        state = spool.locate(arg)
        if state is None:
            return False, f"{arg}: no such message"
        targets = [(arg, state)]
    n = 0
    for qid, state in targets:
        n += await _offline_one(spool, command, qid, state)
    verb = {"delete": "deleted", "hold": "placed on hold", "release": "released from hold",
            "requeue": "requeued"}.get(command)
    if verb is None:
        return False, f"unknown command {command}"
    return True, f"{n} message(s) {verb}"


async def _offline_one(spool: FileSpool, command: str, qid: str, state: str) -> int:
    try:
        if command == "delete":
            spool.remove(qid, state)
            log.info("%s: removed", qid)
            return 1
        if command == "hold" and state != "hold":
            await spool.move(qid, state, "hold", durable=True)
            log.info("%s: placed on hold", qid)
            return 1
        if command == "release" and state == "hold":
            await spool.move(qid, "hold", "active", durable=True)
            log.info("%s: released from hold", qid)
            return 1
        if command == "requeue" and state != "hold":
            await spool.append(qid, state, [{"k": "reset"}])
            await spool.move(qid, state, "active")
            return 1
    except NotFound:
        return 0
    return 0


# --- the control socket --------------------------------------------------------------------------
async def send_control(path: str, command: str, arg: str, timeout: float = 30.0) -> dict[str, Any] | None:
    """Ask a running server; None when nothing listens on the socket."""
    try:
        with short_socket_path(path) as address:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(address), 5)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(json.dumps({"cmd": command, "arg": arg}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    answer = json.loads(line) if line else {"ok": False, "text": "no answer from the queue manager"}
    return answer if isinstance(answer, dict) else None


async def cli(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    action = str(args.action)
    qdir = settings.get_str("queue_directory")
    if not os.path.isdir(os.path.join(qdir, "active")):  # never started: create nothing as this user
        if action == "list":
            out.write("Mail queue is empty\n")
            return 0
        print(f"pymailsrv: no queue at {qdir}", file=sys.stderr)
        return 1
    spool = FileSpool(qdir, SystemClock())
    if action == "list":
        out.write(mailq(spool))
        return 0
    arg = str(getattr(args, "queue_id", None) or "")
    if arg and arg != "ALL" and spool.locate(arg) is None and action != "flush":
        print(f"pymailsrv: {arg}: no such message", file=sys.stderr)
        return 1
    answer = await send_control(socket_path(settings), action, arg)
    if answer is None:
        ok, text = await offline(spool, action, arg)
    else:
        ok, text = bool(answer.get("ok")), str(answer.get("text", ""))
    print(text, file=out if ok else sys.stderr)
    return 0 if ok else 1


__all__ = ["STATES", "cli", "mailq", "offline", "send_control", "socket_path"]
