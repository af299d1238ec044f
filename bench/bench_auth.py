"""Password verification rate per scheme, and Authenticator logins per second.

    .venv/bin/python bench/bench_auth.py [--seconds 1.0]

Each figure is single-process; verification runs in asyncio.to_thread worker threads, so
pure-Python schemes (sha-crypt, md5-crypt, DES via libpass' builtin backend) share one core
through the GIL, while bcrypt and argon2 release it."""

from __future__ import annotations

import argparse
import asyncio
import time

from pymailsrv.auth.authenticator import DirectoryAuthenticator
from pymailsrv.auth.schemes import hash_password, verify_password
from pymailsrv.auth.throttle import Throttle
from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.base import PasswordEntry
from pymailsrv.types import Account

SCHEMES = ["PLAIN", "PLAIN-MD5", "SSHA512", "CRAM-MD5", "MD5-CRYPT", "DES-CRYPT", "SHA256-CRYPT",
           "SHA512-CRYPT", "PBKDF2", "BLF-CRYPT", "ARGON2I", "ARGON2ID", "SCRAM-SHA-256"]


def rate(fn: object, seconds: float) -> float:
    assert callable(fn)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds and n < 1_000_000:
        fn()
        n += 1
    return n / elapsed


class OneUser:
    def __init__(self, stored: str) -> None:
        self.entry = PasswordEntry("bench@example.com", stored, True, Account("bench@example.com", "/tmp/x"))

    async def password_entry(self, login: str) -> PasswordEntry | None:
        return self.entry if login == self.entry.username else None


async def logins(scheme: str, seconds: float, concurrency: int = 8) -> float:
    clock = SystemClock()
    auth = DirectoryAuthenticator(OneUser(hash_password("pw", scheme)), Settings(), clock,
                                  throttle=Throttle(clock, limit=10**9))
    done, deadline = 0, time.perf_counter() + seconds
    start = time.perf_counter()

    async def worker(i: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline and done < 1_000_000:
            assert await auth.authenticate("bench@example.com", "pw", service="imap", remote_ip=f"10.0.0.{i}")
            done += 1

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=1.0)
    args = p.parse_args()
    print(f"{'scheme':<15} {'verify/s':>10}")
    for scheme in SCHEMES:
        stored = hash_password("pässwörd", scheme)
        print(f"{scheme:<15} {rate(lambda s=stored: verify_password('pässwörd', s), args.seconds):>10.0f}")
    for scheme in ("PLAIN", "SHA512-CRYPT", "BLF-CRYPT"):
        print(f"Authenticator logins/s, {scheme}, 8 concurrent: {asyncio.run(logins(scheme, args.seconds)):.0f}")


if __name__ == "__main__":
    main()
