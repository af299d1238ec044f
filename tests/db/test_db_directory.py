"""The Directory contract (POSTFIXADMIN-SCHEMA §4), run against memory, SQLite, MariaDB (asyncmy and
aiomysql) and PostgreSQL with the same data (db_sample.SAMPLE)."""

from __future__ import annotations

import pytest
from conftest import MakeDirectory
from db_sample import BASE

from pymailsrv.db.base import Directory

RESOLVE = [
    # identity alias: the mailbox itself, not the catch-all
    ("carol@example.com", ["carol@example.com"]),
    # catch-all only after exact matches
    ("nosuchuser@example.com", ["alice@example.com"]),
    ("postmaster@example.com", ["alice@example.com"]),
    # forward with copy / forward only
    ("bob@example.com", ["bob.forward@elsewhere.example", "bob@example.com"]),
    ("heidi@example.com", ["heidi@elsewhere.example"]),
    # disabled mailbox (its alias row is disabled too) falls to the catch-all
    ("dave@example.com", ["alice@example.com"]),
    # inactive alias row is ignored -> catch-all
    ("old@example.com", ["alice@example.com"]),
    # vacation pseudo-target dropped
    ("grace@example.com", ["grace@example.com"]),
    # comma lists with spaces, mixed case and empty items; recursion
    ("team@example.com", ["alice@example.com", "carol@example.com"]),
    ("chain@example.com", ["alice@example.com", "carol@example.com"]),
    ("self@example.com", ["self@example.com", "carol@example.com"]),
    # loops are cut where they close
    ("loop1@example.com", ["loop1@example.com"]),
    ("loop2@example.com", ["loop2@example.com"]),
    # alias domain: alias of the target, then mailbox alias, then the target's catch-all
    ("bob@example.net", ["bob.forward@elsewhere.example", "bob@example.com"]),
    ("carol@example.net", ["carol@example.com"]),
    ("nosuchuser@example.net", ["alice@example.com"]),
    # an alias or mailbox directly in the alias domain wins over the target's rows
    ("info@example.net", ["carol@example.com"]),
    ("frank@example.net", ["frank@example.net"]),
    # inactive alias_domain row: no mapping
    ("carol@offad.example", ["carol@offad.example"]),
    # a domain only in alias_domain still maps
    ("carol@aliasonly.example", ["carol@example.com"]),
    # mixed case and stray spaces in the key
    ("  Carol@Example.COM  ", ["carol@example.com"]),
    ("CAROL@EXAMPLE.NET.", ["carol@example.com"]),
    # not hosted: the address itself, its local part spelled as given (RFC 5321 §2.4)
    ("someone@elsewhere.example", ["someone@elsewhere.example"]),
    (" John.Doe@Elsewhere.EXAMPLE ", ["John.Doe@elsewhere.example"]),
    # matched: the table's spelling
    ("POSTMASTER@example.com", ["alice@example.com"]),
    # a '#' address in a hosted domain is an ordinary alias
    ("hash#tag@example.com", ["carol@example.com"]),
    # a mailbox without an identity alias row: the catch-all wins (Postfix resolves aliases first)
    ("ivan@example.com", ["alice@example.com"]),
    # SMTPUTF8 local parts match no row (PostfixAdmin stores ASCII; MySQL's latin1 key columns
    # cannot even compare with them) and fall to the catch-all, on every database
    ("王@example.com", ["alice@example.com"]),
    ("jürgen@example.com", ["alice@example.com"]),
    ("王@elsewhere.example", ["王@elsewhere.example"]),
]

RESOLVE_EXT = [
    # user+ext@domain falls back to user@domain; the unmatched extension is propagated
    ("alice+tag@example.com", ["alice+tag@example.com"]),
    ("bob+x@example.com", ["bob.forward+x@elsewhere.example", "bob+x@example.com"]),
    ("team+x@example.com", ["alice+x@example.com", "carol+x@example.com"]),
    # the full key matches first: no propagation
    ("ext+fixed@example.com", ["carol@example.com"]),
    # catch-all with an extension
    ("nobody+x@example.com", ["alice+x@example.com"]),
    # alias domain: the target's catch-all answers for the full key before user@domain is tried
    # (Postfix with PostfixAdmin's queries); the full key matched, so nothing is propagated
    ("bob+x@example.net", ["alice@example.com"]),
]


@pytest.mark.parametrize(("address", "expected"), RESOLVE)
async def test_resolve(directory: Directory, address: str, expected: list[str]) -> None:
    assert await directory.resolve(address) == expected


@pytest.mark.parametrize(("address", "expected"), RESOLVE_EXT)
async def test_resolve_with_recipient_delimiter(directory: Directory, address: str,
                                                expected: list[str]) -> None:
    assert await directory.resolve(address) == expected


async def test_without_delimiter_the_extension_is_part_of_the_local_part(
        make_directory: MakeDirectory) -> None:
    d = await make_directory("")
    assert await d.resolve("alice+tag@example.com") == ["alice@example.com"]  # the catch-all
    assert await d.mailbox("alice+tag@example.com") is None


async def test_several_delimiters(make_directory: MakeDirectory) -> None:
    d = await make_directory("+-")
    assert await d.resolve("carol-news@example.com") == ["carol-news@example.com"]
    acct = await d.mailbox("carol-news@example.com")
    assert acct is not None and acct.username == "carol@example.com"


@pytest.mark.parametrize(("domain", "local", "relay", "transport"), [
    ("example.com", True, False, "virtual"),
    ("EXAMPLE.COM ", True, False, "virtual"),
    ("example.net", True, False, "virtual"),
    ("aliasonly.example", True, False, None),  # alias domains count as local
    ("disabled.example", False, False, None),
    ("backup.example", False, True, "virtual"),  # backupmx is not local
    ("relay.example", False, True, "smtp:[192.0.2.25]"),
    ("lmtp.example", True, False, "lmtp:unix:private/dovecot-lmtp"),
    ("elsewhere.example", False, False, None),
    ("autoreply.example.com", False, False, None),
    ("bücher.example", False, False, None),  # an IDN as U-label: PostfixAdmin stores xn--
])
async def test_domains(directory: Directory, domain: str, local: bool, relay: bool,
                       transport: str | None) -> None:
    assert await directory.is_local_domain(domain) is local
    assert await directory.is_relay_domain(domain) is relay
    assert await directory.transport(domain) == transport


@pytest.mark.parametrize(("address", "username", "maildir"), [
    ("alice@example.com", "alice@example.com", f"{BASE}/example.com/alice"),
    (" Alice@EXAMPLE.com", "alice@example.com", f"{BASE}/example.com/alice"),
    ("alice+tag@example.com", "alice@example.com", f"{BASE}/example.com/alice"),
    ("bob@example.net", "bob@example.com", f"{BASE}/example.com/bob"),  # through the alias domain
    ("bob+x@example.net", "bob@example.com", f"{BASE}/example.com/bob"),
    ("frank@example.net", "frank@example.net", f"{BASE}/example.net/frank"),
    ("heidi@example.com", "heidi@example.com", f"{BASE}/example.com/heidi"),  # forward-only still has one
    ("eve@disabled.example", "eve@disabled.example", f"{BASE}/disabled.example/eve"),  # domain.active unchecked
    ("zoe@example.com", "zoe@example.com", f"{BASE}/legacy/zoe-old"),  # stored maildir column
])
async def test_mailbox(directory: Directory, address: str, username: str, maildir: str) -> None:
    acct = await directory.mailbox(address)
    assert acct is not None
    assert (acct.username, acct.maildir) == (username, maildir)


@pytest.mark.parametrize("address", [
    "dave@example.com",  # inactive
    "nosuchuser@example.com",
    "carol@offad.example",  # inactive alias_domain row
    "evil@example.com",  # maildir outside virtual_mailbox_base
    "postmaster@example.com",  # an alias, not a mailbox
    "no-at-sign",
    "",
    "王@example.com",
])
async def test_no_mailbox(directory: Directory, address: str) -> None:
    assert await directory.mailbox(address) is None


async def test_quota_name_and_utf8(directory: Directory) -> None:
    alice = await directory.mailbox("alice@example.com")
    carol = await directory.mailbox("carol@example.com")
    assert alice is not None and carol is not None
    assert (alice.quota_bytes, alice.name) == (51200000, "Alice")
    assert (carol.quota_bytes, carol.name) == (0, "Carol 王")


async def test_password_entry(directory: Directory) -> None:
    e = await directory.password_entry("  Bob@Example.COM")
    assert e is not None
    assert (e.username, e.password, e.active) == ("bob@example.com", "{PLAIN}pw-bob", True)
    assert e.account.maildir == f"{BASE}/example.com/bob"
    dave = await directory.password_entry("dave@example.com")
    assert dave is not None and dave.active is False  # the caller refuses it
    eve = await directory.password_entry("eve@disabled.example")
    assert eve is not None and eve.active  # domain.active is not checked (§4)
    assert await directory.password_entry("bob@example.net") is None  # no login via alias domain
    assert await directory.password_entry("nobody@example.com") is None
    assert await directory.password_entry("evil@example.com") is None
    assert await directory.password_entry("王@example.com") is None
    latin = await directory.password_entry("latin@example.com")  # latin1 column, utf8mb4 connection
    assert latin is not None and latin.password == "{PLAIN}pässwörd"


@pytest.mark.parametrize(("login", "address", "owns"), [
    ("alice@example.com", "alice@example.com", True),
    ("Alice@Example.com", " ALICE@example.com", True),
    ("alice@example.com", "alice+tag@example.com", True),
    ("bob@example.com", "bob@example.net", True),  # via the alias domain
    ("alice@example.com", "postmaster@example.com", True),  # alias whose goto has the login
    ("carol@example.com", "team@example.com", True),
    ("bob@example.com", "sales@example.com", True),
    ("carol@example.com", "info@example.net", True),
    ("carol@example.com", "postmaster@example.com", False),
    ("alice@example.com", "anyone@example.com", True),  # the catch-all's target (Postfix asks @domain too)
    ("carol@example.com", "bob@example.com", False),
    ("bob@example.com", "carol@example.net", False),
    ("carol@example.com", "old@example.com", False),  # inactive alias
    ("heidi@example.com", "heidi@example.com", True),
    ("carol@example.com", "someone@elsewhere.example", False),
    ("", "carol@example.com", False),
])
async def test_login_owns(directory: Directory, login: str, address: str, owns: bool) -> None:
    assert await directory.login_owns(login, address) is owns
