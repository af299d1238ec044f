"""A folder is bound to its identity, not its name (issue 13): sessions whose selected folder was
renamed or deleted away by another session, names created again, names refused whole. Over a
real socket, on both stores."""

from __future__ import annotations

import logging
import re

from tests.imap.conftest import RawClient

BODY = b"Subject: late\r\n\r\nbody\r\n"


def uidvalidity(c: RawClient, tag: str, name: str) -> int:
    c.send(f"{tag} STATUS {name} (UIDVALIDITY UIDNEXT MESSAGES)")
    line = c.until(tag)[0]
    m = re.search(r"UIDVALIDITY (\d+)", line)
    assert m, line
    return int(m.group(1))


def test_append_to_selected_folder_renamed_away(raw, caplog) -> None:  # type: ignore[no-untyped-def]
    """RFC 3501 §6.3.11: the name no longer exists, so NO [TRYCREATE]; the selected session then
    ends with BYE (its UIDs belong to a folder that has another name now), without a traceback."""
    caplog.set_level(logging.INFO, logger="pymailsrv")
    a, b = raw(), raw()
    a.login()
    b.login()
    a.send("c CREATE Work")
    a.expect("c OK *")
    a.send("s SELECT Work")
    a.until("s")
    b.send("r RENAME Work Done")
    b.expect("r OK *")
    a.sendraw(b"x APPEND Work {%d+}\r\n" % len(BODY) + BODY + b"\r\n")
    a.expect("x NO [TRYCREATE] *")
    a.expect("* BYE Selected mailbox was deleted, have to disconnect.")
    assert a.closed()
    b.send("l STATUS Done (MESSAGES)")
    assert b.until("l")[0] == '* STATUS "Done" (MESSAGES 0)'
    assert not [r for r in caplog.records if r.name.startswith("pymailsrv") and r.levelno >= logging.ERROR]
    assert "FileNotFoundError" not in caplog.text


def test_selected_session_learns_of_delete_and_the_name_starts_afresh(raw) -> None:  # type: ignore[no-untyped-def]
    """The selected session is told by BYE at its next command (or at once in IDLE); a folder
    created again under the name has no messages, UIDNEXT 1 and a greater UIDVALIDITY; an APPEND
    by name goes to that new folder."""
    a, b, idler = raw(), raw(), raw()
    for c in (a, b, idler):
        c.login()
    b.send("c CREATE Work")
    b.expect("c OK *")
    b.sendraw(b"p APPEND Work {%d+}\r\n" % len(BODY) + BODY + b"\r\n")
    b.expect("p OK [APPENDUID * 1] *")
    before = uidvalidity(b, "v", "Work")
    for c in (a, idler):
        c.send("s SELECT Work")
        c.until("s")
    idler.send("i IDLE")
    idler.expect("+ idling")
    b.send("d DELETE Work")
    b.expect("d OK *")
    idler.expect("* BYE Selected mailbox was deleted, have to disconnect.")
    assert idler.closed()
    b.send("e CREATE Work")
    b.expect("e OK *")
    after = uidvalidity(b, "w", "Work")
    assert after > before
    a.sendraw(b"x APPEND Work {%d+}\r\n" % len(BODY) + BODY + b"\r\n")
    a.expect(f"x OK [APPENDUID {after} 1] Append completed.")
    a.expect("* BYE Selected mailbox was deleted, have to disconnect.")
    assert a.closed()
    b.send("f SELECT Work")
    lines = b.until("f")
    assert "* 1 EXISTS" in lines and f"* OK [UIDVALIDITY {after}] UIDs valid" in lines
    assert "* OK [UIDNEXT 2] Predicted next UID" in lines


def test_renaming_the_own_selected_folder_leaves_the_selected_state(raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.login()
    c.send("c CREATE Work.Sub")
    c.expect("c OK *")
    c.send("s SELECT Work.Sub")
    c.until("s")
    c.send("r RENAME Work Done")
    c.expect("r OK Rename completed.")
    c.send("n NOOP")
    c.expect("n OK *")
    c.send("f FETCH 1 FLAGS")
    c.expect("f BAD Command not allowed in this state.")


def test_create_refused_whole_creates_nothing(raw) -> None:  # type: ignore[no-untyped-def]
    """A name too long or too deep is refused before any superior folder exists."""
    c = raw()
    c.login()
    deep = ".".join(["d"] * 100)
    long = "p.q." + "x" * 300
    for tag, name in (("a", deep), ("b", long)):
        c.send(f"{tag} CREATE {name}")
        c.expect(f"{tag} NO [CANNOT] *")
    c.send("g CREATE " + ".".join(["ok"] * 16))  # 16 levels is the limit (as Dovecot)
    c.expect("g OK *")
    assert {n.split(".")[0] for n in list_names(c)} == {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive", "ok"}
    c.send("r RENAME ok o" + "x" * 190)  # its children would get names too long: nothing moves
    c.expect("r NO [CANNOT] *")
    assert [n for n in list_names(c) if n.startswith("o")] == [".".join(["ok"] * i) for i in range(1, 17)]


def list_names(c: RawClient) -> list[str]:
    c.send('l LIST "" *')
    return [line.rsplit(" ", 1)[1].strip('"') for line in c.until("l")[:-1]]
