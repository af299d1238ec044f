"""The queue's local delivery on the store package's real MaildirStore (POSTFIX-SEMANTICS §7)."""

from __future__ import annotations

import os
import re

from qfakes import MSG, Harness, envelope, maildir_messages

from pymailsrv.store.maildir import MaildirStore
from pymailsrv.types import Account

NAME = re.compile(r"^\d+\.M\d+P\d+Q\d+\.[^,/]+,S=(\d+),W=(\d+)$")


def real(qsettings, clock, directory, tmp_path, **params) -> Harness:
    store = MaildirStore(str(tmp_path / "vmail"), "mx.example.test")
    return Harness(qsettings(**params), clock, directory, store=store)


async def test_fast_path_into_real_maildir(qsettings, clock, directory, tmp_path):
    async with real(qsettings, clock, directory, tmp_path) as h:
        await h.manager.submit(envelope("s@far.test", "alice@example.test", "bob@example.test"), MSG)
    acct = directory.mailboxes["alice@example.test"]
    [name] = os.listdir(os.path.join(acct.maildir, "new"))
    m = NAME.match(name)
    assert m, name
    [data] = maildir_messages(acct)
    assert int(m.group(1)) == len(data)
    assert int(m.group(2)) == len(data.replace(b"\n", b"\r\n"))
    assert data.startswith(b"Return-Path: <s@far.test>\nDelivered-To: alice@example.test\n")
    assert b"\r" not in data
    assert os.path.exists(os.path.join(acct.maildir, "maildirsize"))


async def test_overquota_on_real_maildir_bounces_522(qsettings, clock, directory, tmp_path):
    small = Account("alice@example.test", directory.mailboxes["alice@example.test"].maildir, 300)
    directory.mailboxes["alice@example.test"] = small
    directory.add_mailbox("s@example.test", str(tmp_path / "vmail"))
    async with real(qsettings, clock, directory, tmp_path) as h:
        for _ in range(4):
            await h.manager.submit(envelope("s@example.test", "alice@example.test"), MSG)
        await h.manager.wait_idle()
    assert 1 <= len(maildir_messages(small)) < 4
    bounces = maildir_messages(directory.mailboxes["s@example.test"])
    assert bounces and all(b"Status: 5.2.2" in b for b in bounces)


async def test_spooled_delivery_into_real_maildir(qsettings, clock, directory, tmp_path):
    h = real(qsettings, clock, directory, tmp_path)
    h.manager.fast_path = False
    async with h:
        await h.manager.submit(envelope("s@far.test", "bob@example.test"), MSG)
        await h.manager.wait_idle()
        assert h.manager.entries == {}
    assert len(maildir_messages(directory.mailboxes["bob@example.test"])) == 1
