"""Rules that need data too large for the shared sample: expansion limits (memory Directory)."""

from __future__ import annotations

import pytest

from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.db.rules import EXPANSION_LIMIT, RECURSION_LIMIT, parse_goto
from pymailsrv.errors import TemporaryFailure


async def test_deep_alias_chain_is_a_temporary_failure() -> None:
    d = MemoryDirectory()
    d.add_domain("example.com")
    for i in range(RECURSION_LIMIT + 5):
        d.add_alias(f"a{i}@example.com", f"a{i + 1}@example.com")
    assert await d.resolve(f"a{RECURSION_LIMIT + 5 - 10}@example.com") == [f"a{RECURSION_LIMIT + 5}@example.com"]
    with pytest.raises(TemporaryFailure, match="nesting"):
        await d.resolve("a0@example.com")


async def test_huge_expansion_is_a_temporary_failure() -> None:
    d = MemoryDirectory()
    d.add_domain("example.com")
    d.add_alias("all@example.com", [f"u{i}@elsewhere.example" for i in range(EXPANSION_LIMIT + 1)])
    d.add_alias("many@example.com", [f"u{i}@elsewhere.example" for i in range(EXPANSION_LIMIT)])
    assert len(await d.resolve("many@example.com")) == EXPANSION_LIMIT
    with pytest.raises(TemporaryFailure, match="expansion"):
        await d.resolve("all@example.com")


def test_parse_goto() -> None:
    assert parse_goto(" A@x.example ,, b@Y.example,") == ["a@x.example", "b@y.example"]
    assert parse_goto("") == []


async def test_memory_directory_helpers() -> None:
    d = MemoryDirectory("/vmail", "+")
    d.add_domain("example.com")
    d.add_mailbox("bob@example.com", password="{PLAIN}x", quota=5, maildir="b/")
    d.add_alias_domain("example.org", "example.com")
    acct = await d.mailbox("bob+x@example.org")
    assert acct is not None and (acct.username, acct.maildir, acct.quota_bytes) == ("bob@example.com", "/vmail/b", 5)
    assert await d.resolve("bob@example.org") == ["bob@example.com"]
    assert await d.login_owns("bob@example.com", "bob@example.org")
