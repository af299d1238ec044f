"""Basic authentication of superadmins: the password checked as PostfixAdmin stored it, the
failed-login penalty of the mail protocols, "try later" when the database is down."""

from __future__ import annotations

import base64

import pytest

from pymailsrv.auth import pacrypt
from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.auth.throttle import Throttle
from pymailsrv.config.settings import Settings
from pymailsrv.errors import TemporaryFailure
from pymailsrv.ops.admin_auth import AdminLogin
from tests.auth.conftest import InstantClock


class Admins:
    def __init__(self, rows: dict[str, str], down: bool = False) -> None:
        self.rows = rows
        self.down = down
        self.asked: list[str] = []

    async def superadmin_password(self, username: str) -> str | None:
        self.asked.append(username)
        if self.down:
            raise TemporaryFailure("database gone")
        return self.rows.get(username)

    async def close(self) -> None:
        pass


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _login(admins: Admins) -> tuple[AdminLogin, InstantClock]:
    clock = InstantClock()
    return AdminLogin(admins, "CRYPT", Throttle(clock, delay=2.0), clock, failure_delay=2.0), clock


async def test_superadmin_in_with_the_stored_hash_others_out() -> None:
    stored = pacrypt.from_settings(Settings()).hash("s3cret")
    assert stored.startswith("$1$")  # unprefixed MD5-crypt, as PostfixAdmin 3.3 stores it
    admins = Admins({"boss@example.test": stored})
    login, clock = _login(admins)
    assert await login.check(_basic("Boss@Example.test", "s3cret"), "192.0.2.1") == "boss@example.test"
    assert clock.requested == []
    assert await login.check("", "192.0.2.1") is None and admins.asked == ["boss@example.test"]
    assert await login.check(_basic("boss@example.test", "wrong"), "192.0.2.1") is None
    assert await login.check(_basic("someone@example.test", "s3cret"), "192.0.2.1") is None
    # each failure's answer waits 2s, and the address's second failure waited its penalty first
    assert clock.requested == [2.0, 2.0, 2.0]


async def test_database_down_is_try_later() -> None:
    login, _ = _login(Admins({}, down=True))
    with pytest.raises(AuthUnavailable):
        await login.check(_basic("boss@example.test", "x"), "192.0.2.1")


async def test_failed_logins_are_logged_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    login, _ = _login(Admins({}))
    caplog.set_level("INFO", logger="pymailsrv.httpd")
    await login.check(_basic("x>\nforged", "hunter2"), "192.0.2.9")
    assert "statistics login failed: user=<x\\076\\012forged>, rip=192.0.2.9" in caplog.text
    assert "hunter2" not in caplog.text and "\nforged" not in caplog.text
