"""IMAP over real sockets with stdlib imaplib: login, select, fetch, store, search, append."""

from __future__ import annotations

import imaplib

import pytest

from tests.imap.conftest import PASSWORD, USERS, msg


def test_greeting_capability_login_logout(imap) -> None:  # type: ignore[no-untyped-def]
    c = imap.client(None)
    assert "IMAP4REV1" in c.capabilities
    assert "STARTTLS" in c.capabilities
    assert "AUTH=PLAIN" in c.capabilities  # loopback is local
    typ, _ = c.login(USERS[0], PASSWORD)
    assert typ == "OK"
    typ, caps = c.capability()
    for cap in (b"IDLE", b"UIDPLUS", b"MOVE", b"NAMESPACE", b"SORT", b"THREAD=REFERENCES", b"QUOTA",
                b"LIST-EXTENDED", b"SPECIAL-USE", b"ESEARCH", b"UNSELECT", b"LITERAL+", b"ENABLE"):
        assert cap in caps[0].split(), cap
    assert c.logout()[0] == "BYE"


def test_bad_password(imap) -> None:  # type: ignore[no-untyped-def]
    c = imap.client(None)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login(USERS[0], "wrong")
    c.logout()


def test_select_fetch_store_search(imap) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        imap.deliver(msg(f"m{i}", body=f"body {i}\n"))
    c = imap.client()
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    typ, data = c.fetch("1:*", "(UID FLAGS RFC822.SIZE)")
    assert typ == "OK" and len(data) == 3
    assert b"UID 1 " in data[0] and b"\\Recent" in data[0]
    typ, data = c.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: m1\r\n\r\n"
    typ, data = c.fetch("2", "(BODY[TEXT])")
    assert data[0][1] == b"body 1\r\n"
    typ, data = c.fetch("2", "(FLAGS)")
    assert b"\\Seen" in data[0]
    typ, data = c.store("1", "+FLAGS", "(\\Flagged)")
    assert b"\\Flagged" in data[0]
    assert c.search(None, "FLAGGED") == ("OK", [b"1"])
    assert c.search(None, "UNSEEN") == ("OK", [b"1 3"])
    assert c.search(None, "SUBJECT", "m2") == ("OK", [b"3"])
    assert c.search(None, "BODY", '"body 0"') == ("OK", [b"1"])
    assert c.uid("SEARCH", "UID", "2:*") == ("OK", [b"2 3"])
    c.logout()


def test_fetch_answered_from_the_cache_is_the_same(imap) -> None:  # type: ignore[no-untyped-def]
    """A FETCH whose items the process cache holds (no file read, no parse) answers byte for byte
    as the first one did; the items it lacks are still computed."""
    for i in range(3):
        imap.deliver(msg(f"m{i}", body=f"body {i}\n"))
    c = imap.client()
    c.select("INBOX")
    items = "(UID ENVELOPE BODY BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] FLAGS BODYSTRUCTURE)"
    first = c.fetch("1:3", items)
    assert first[0] == "OK" and len(first[1]) == 6  # (a literal each: imaplib splits the lines)
    assert c.fetch("1:3", items) == first
    assert c.fetch("1:3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] ENVELOPE)")[1][0][1] == b"Subject: m0\r\n\r\n"
    assert c.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.5>)")[1][0][1] == b"Subje"
    c.logout()


def test_append_expunge_uidplus(imap) -> None:  # type: ignore[no-untyped-def]
    c = imap.client()
    typ, data = c.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(1700000000), msg("appended"))
    assert typ == "OK" and b"APPENDUID" in data[0]
    c.select("INBOX")
    typ, data = c.fetch("1", "(FLAGS INTERNALDATE)")
    assert b"\\Seen" in data[0] and b"14-Nov-2023" in data[0]
    c.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = c.expunge()
    assert data == [b"1"]
    c.logout()
