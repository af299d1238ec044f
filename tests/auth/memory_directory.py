"""A small in-memory Directory for the auth tests (password entries only; the db engineer's
SqlDirectory is tested against the same Authenticator on SQLite and MariaDB)."""

from __future__ import annotations

from pymailsrv.db.base import PasswordEntry
from pymailsrv.errors import TemporaryFailure
from pymailsrv.types import Account


class MemoryDirectory:
    def __init__(self) -> None:
        self.rows: dict[str, PasswordEntry] = {}
        self.down = False
        self.lookups: list[str] = []

    def add(self, username: str, password: str, *, active: bool = True, quota: int = 0) -> None:
        domain = username.rpartition("@")[2]
        local = username.rpartition("@")[0]
        account = Account(username, f"/vmail/{domain}/{local}/", quota)
        # keyed the way MySQL's _ci collation finds it; SQLite rows are lower-case (PostfixAdmin)
        self.rows[username.lower()] = PasswordEntry(username, password, active, account)

    async def password_entry(self, login: str) -> PasswordEntry | None:
        self.lookups.append(login)
        if self.down:
            raise TemporaryFailure("database connection lost")
        return self.rows.get(login)

    async def is_local_domain(self, domain: str) -> bool:
        return any(u.endswith("@" + domain) for u in self.rows)

    async def is_relay_domain(self, domain: str) -> bool:
        return False

    async def transport(self, domain: str) -> str | None:
        return "virtual" if await self.is_local_domain(domain) else None

    async def resolve(self, address: str, *, autoreply: bool = False) -> list[str]:
        return [address]

    async def is_vacation_target(self, address: str) -> bool:
        return False

    async def mailbox(self, address: str) -> Account | None:
        entry = self.rows.get(address.lower())
        return entry.account if entry and entry.active else None

    async def login_owns(self, login: str, address: str) -> bool:
        return login.lower() == address.lower()

    async def close(self) -> None:
        return None
