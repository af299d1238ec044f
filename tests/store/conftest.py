"""Store fixtures: one factory per MailStore implementation, so the contract suite runs over all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pymailsrv.clock import SystemClock
from pymailsrv.store.memory import MemoryStore
from pymailsrv.types import Account

IMPLEMENTATIONS = ["memory", "maildir"]


def make_store(kind: str, base: Path):  # type: ignore[no-untyped-def]
    if kind == "memory":
        return MemoryStore(SystemClock())
    from pymailsrv.store.maildir import MaildirStore

    return MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.02)


@pytest.fixture(params=IMPLEMENTATIONS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(store_kind: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    made = make_store(store_kind, tmp_path)
    yield made
    await made.close()  # folders released by the test retire in the background


@pytest.fixture
def account_factory(tmp_path: Path) -> Callable[..., Account]:
    def make(user: str = "alice@example.test", quota: int = 0) -> Account:
        return Account(username=user, maildir=str(tmp_path / "vmail" / user.replace("@", "_")) + "/", quota_bytes=quota)

    return make


@pytest.fixture
def account(account_factory: Callable[..., Account]) -> Account:
    return account_factory()
