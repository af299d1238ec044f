"""Receivers the log_target tests bind: a syslog daemon's datagram socket (unix or UDP) and a
journald native socket that decodes the fields (systemd's "Native Journal Protocol", memfds
included). Each collects in a thread; ``wait_for`` polls for a condition."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def decode_journal(data: bytes) -> dict[str, str]:
    """``NAME=value\\n`` fields and binary ones (``NAME\\n`` + u64 LE length + value + ``\\n``)."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        line = data[pos:end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            pos = end + 1
        else:
            name = line
            (size,) = struct.unpack("<Q", data[end + 1:end + 9])
            value = data[end + 9:end + 9 + size]
            assert data[end + 9 + size:end + 10 + size] == b"\n"
            pos = end + 10 + size
        fields[name.decode()] = value.decode()
    return fields


class Receiver(Generic[T]):
    def __init__(self, sock: socket.socket, decode: Callable[[socket.socket], T | None]) -> None:
        self.sock = sock
        self.decode = decode
        self.items: list[T] = []
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                item = self.decode(self.sock)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return
            if item is not None:
                self.items.append(item)

    def wait_for(self, condition: Callable[[list[T]], bool], timeout: float = 60.0) -> list[T]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(list(self.items)):
                return list(self.items)
            time.sleep(0.05)
        raise AssertionError(f"not received in {timeout}s; got {self.items!r}")

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()


@contextlib.contextmanager
def short_dir() -> Iterator[str]:
    """A directory with a short path (a unix socket address holds at most 107 bytes)."""
    path = tempfile.mkdtemp(prefix="pml-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _datagram(sock: socket.socket) -> bytes | None:
    return sock.recv(1 << 20)


def _journal_datagram(sock: socket.socket) -> dict[str, str] | None:
    data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 4)
    if fds:  # a record too large for a datagram comes in a sealed memfd
        try:
            data = os.pread(fds[0], os.fstat(fds[0]).st_size, 0)
        finally:
            for fd in fds:
                os.close(fd)
    return decode_journal(data)


@contextlib.contextmanager
def unix_syslog() -> Iterator[tuple[str, Receiver[bytes]]]:
    with short_dir() as directory:
        path = os.path.join(directory, "log")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        receiver = Receiver(sock, _datagram)
        try:
            yield path, receiver
        finally:
            receiver.close()


@contextlib.contextmanager
def udp_syslog() -> Iterator[tuple[str, Receiver[bytes]]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    receiver = Receiver(sock, _datagram)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}", receiver
    finally:
        receiver.close()


@contextlib.contextmanager
def journal() -> Iterator[tuple[str, Receiver[dict[str, str]]]]:
    with short_dir() as directory:
        path = os.path.join(directory, "journal.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        receiver = Receiver(sock, _journal_datagram)
        try:
            yield path, receiver
        finally:
            receiver.close()
