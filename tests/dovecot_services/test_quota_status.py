"""quota-status over a real socket, in Postfix's policy delegation protocol."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from tests.dovecot_services.conftest import QUOTA, fill


def request(recipient: str, size: int = 0, **extra: str) -> bytes:
    attrs = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
             "client_address": "192.0.2.1", "sender": "s@remote.example", "recipient": recipient,
             "size": str(size), **extra}
    return "".join(f"{k}={v}\n" for k, v in attrs.items()).encode() + b"\n"


def ask(port: int, *requests: bytes) -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        answers = []
        for req in requests:
            sock.sendall(req)
            lines = []
            while (line := f.readline()) != b"\n":
                assert line, "connection closed"
                lines.append(line.decode().rstrip("\n"))
            answers.append("|".join(lines))
        return answers


async def test_actions(stack: Any) -> None:
    fill(stack.vmail, "full", QUOTA)
    fill(stack.vmail, "small", QUOTA - 1000)
    answers = await asyncio.to_thread(
        ask, stack.quota_port,
        request("alice@example.com"),  # no quota
        request("full@example.com"),
        request("FULL@example.com", 10),
        request("small@example.com", 500),
        request("small@example.com", 1500),  # does not fit in what is left
        request("small@example.com", QUOTA + 1),  # larger than the whole quota
        request("nobody@example.com"),
        request("sales@example.com"),  # an alias to full@
        request("team@example.com"),  # an alias to two mailboxes: not judged here
        request("full@example.com", request="junk"),
        request(""),
        request("someone@elsewhere.example"),  # relayed for an allowed client: not ours
    )
    assert answers == [
        "action=DUNNO", "action=552 5.2.2 Mailbox is full", "action=552 5.2.2 Mailbox is full", "action=DUNNO",
        "action=552 5.2.2 Mailbox is full", "action=552 5.2.2 Mailbox is full", "action=REJECT Unknown user",
        "action=552 5.2.2 Mailbox is full", "action=DUNNO", "action=DUNNO", "action=DUNNO", "action=DUNNO"]


async def test_configured_actions(stack_factory: Any) -> None:
    stack = await stack_factory(quota_status_success="OK", quota_status_overquota="DEFER_IF_PERMIT full",
                                quota_status_toolarge="REJECT too large", quota_status_nouser="DUNNO")
    fill(stack.vmail, "full", QUOTA)
    answers = await asyncio.to_thread(ask, stack.quota_port, request("bob@example.com"), request("full@example.com"),
                                      request("small@example.com", QUOTA * 2), request("nobody@example.com"))
    assert answers == ["action=OK", "action=DEFER_IF_PERMIT full", "action=REJECT too large", "action=DUNNO"]


def closed_without_answer(port: int, data: bytes) -> bytes:
    """What the server answers before it closes (a reset is a close: the server may close
    with some of ``data`` unread)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(data)
            return sock.makefile("rb").read()
    except ConnectionResetError:
        return b""


async def test_bad_input_closes_the_connection(stack: Any) -> None:
    def talk(data: bytes) -> bytes:
        return closed_without_answer(stack.quota_port, data)

    assert await asyncio.to_thread(talk, b"no equals sign\n\n") == b""
    assert await asyncio.to_thread(talk, b"a=" + b"x" * 10000 + b"\n\n") == b""
    assert await asyncio.to_thread(talk, b"".join(b"a%d=1\n" % i for i in range(200)) + b"\n") == b""


async def test_tcp_clients_outside_mynetworks_are_refused(stack_factory: Any) -> None:
    """Its answers tell which users exist: over TCP only mynetworks may ask."""
    stack = await stack_factory(mynetworks="192.0.2.0/24")

    assert await asyncio.to_thread(closed_without_answer, stack.quota_port, request("alice@example.com")) == b""
