"""CONDSTORE and QRESYNC (RFC 7162) over real sockets, on the memory and the Maildir store: what
enables CONDSTORE, the MODSEQ every flags response carries then, conditional STORE, ESEARCH
MODSEQ, SELECT (QRESYNC …), VANISHED (EARLIER) and VANISHED in place of EXPUNGE; and the grammar
of the new arguments."""

from __future__ import annotations

import re

import pytest

from pymailsrv.imap.commands import resync
from pymailsrv.imap.grammar import FetchArgs, QresyncArgs, SelectArgs
from pymailsrv.imap.parser import Bad, CommandParser
from tests.imap.conftest import RawClient, msg


def parse(line: str) -> object:
    p = CommandParser()
    p.feed(line.encode() + b"\r\n")
    return p.next()


def test_grammar_of_select_and_fetch_modifiers() -> None:
    a = parse("a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))").args  # type: ignore[attr-defined]
    assert a == SelectArgs(b"INBOX", ("QRESYNC",), QresyncArgs(67890007, 20050715194045000,
                                                               ((41, 41), (43, 211), (214, 541))))
    a = parse("a EXAMINE INBOX (CONDSTORE QRESYNC (1 2 1:* (1:3 5,7,9)))").args  # type: ignore[attr-defined]
    assert a.params == ("CONDSTORE", "QRESYNC") and a.qresync.seq_match == (((1, 3),), ((5, 5), (7, 7), (9, 9)))
    assert parse("a SELECT INBOX (QRESYNC (1 2 (1 5)))").args.qresync.seq_match == (((1, 1),), ((5, 5),))  # type: ignore[attr-defined]
    f = parse("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12 VANISHED)").args  # type: ignore[attr-defined]
    assert f == FetchArgs(((1, None),), f.atts, 12, True)
    assert parse("a COMPRESS deflate").args == "DEFLATE"  # type: ignore[attr-defined]
    for bad in ("a SELECT INBOX (QRESYNC)", "a SELECT INBOX (QRESYNC (1))", "a SELECT INBOX (QRESYNC (0 1))",
                "a SELECT INBOX ()", "a SELECT INBOX (QRESYNC (1 2 ))", "a FETCH 1 FLAGS (VANISHED VANISHED)",
                "a FETCH 1 FLAGS (FOO 1)", "a FETCH 1 FLAGS ()", "a COMPRESS"):
        assert isinstance(parse(bad), Bad), bad


def test_uid_ranges_and_gaps() -> None:
    ranges = resync.uid_ranges(((5, None), (1, 2), (3, 3)), 9)
    assert ranges == [(1, 3), (5, 9)]
    assert resync.uid_ranges(((1, 4294967295),), 0) == []
    assert resync.gaps([(1, 3), (5, 4_000_000_000)], [2, 6, 7]) == [(1, 1), (3, 3), (5, 5), (8, 4_000_000_000)]
    assert resync.within([1, 4, 5, 12], [(1, 3), (5, 9)]) == [1, 5]


def modseq_of(line: str) -> int:
    m = re.search(r"MODSEQ \(?(\d+)", line)
    assert m, line
    return int(m.group(1))


def highest(lines: list[str]) -> int:
    (line,) = [x for x in lines if "[HIGHESTMODSEQ " in x]
    return int(line.split("[HIGHESTMODSEQ ")[1].split("]")[0])


def uidvalidity(lines: list[str]) -> int:
    (line,) = [x for x in lines if "[UIDVALIDITY " in x]
    return int(line.split("[UIDVALIDITY ")[1].split("]")[0])


def selected(raw, imap, n: int = 4, enable: str = "") -> RawClient:  # type: ignore[no-untyped-def]
    for i in range(n):
        imap.deliver(msg(f"m{i}"))
    c: RawClient = raw()
    c.login()
    if enable:
        c.send(f"e ENABLE {enable}")
        assert c.until("e")[-1].startswith("e OK")
    c.send("s SELECT INBOX")
    assert c.until("s")[-1].startswith("s OK")
    return c


def test_a_condstore_enabling_fetch_reports_highestmodseq_once(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = selected(raw, imap)
    c.send("f FETCH 1 (MODSEQ)")
    lines = c.until("f")
    top = highest(lines)
    assert lines[-2] == f"* 1 FETCH (MODSEQ ({modseq_of(lines[-2])}))" and modseq_of(lines[-2]) <= top
    c.send("g FETCH 2 (MODSEQ)")
    assert not any("HIGHESTMODSEQ" in x for x in c.until("g"))
    c.send("a STORE 1 +FLAGS (\\Seen)")
    lines = c.until("a")
    assert re.fullmatch(r"\* 1 FETCH \(UID 1 FLAGS \(\\Seen( \\Recent)?\) MODSEQ \((\d+)\)\)", lines[0]), lines
    assert modseq_of(lines[0]) > top
    c.send("b STORE 1:2 +FLAGS.SILENT (\\Seen)")  # only message 2 changes
    lines = c.until("b")
    assert len(lines) == 2 and re.fullmatch(r"\* 2 FETCH \(UID 2 MODSEQ \(\d+\)\)", lines[0]), lines


def test_flag_changes_of_another_session_carry_uid_and_modseq(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = selected(raw, imap, enable="CONDSTORE")
    other = raw()
    other.login()
    other.send("s SELECT INBOX")
    other.until("s")
    other.send("a STORE 3 +FLAGS (\\Flagged)")
    other.until("a")
    c.send("n NOOP")
    lines = c.until("n")
    assert re.fullmatch(r"\* 3 FETCH \(UID 3 FLAGS \(\\Flagged( \\Recent)?\) MODSEQ \(\d+\)\)", lines[0]), lines


def test_conditional_store_and_changedsince(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = selected(raw, imap)
    c.send("s SELECT INBOX (CONDSTORE)")
    lines = c.until("s")
    assert "* OK [CLOSED] Previous mailbox closed." in lines
    top = highest(lines)
    c.send("a STORE 2 +FLAGS (\\Seen)")
    second = modseq_of(c.until("a")[0])
    c.send(f"b UID STORE 1:3 (UNCHANGEDSINCE {top}) +FLAGS (\\Flagged)")
    lines = c.until("b")
    assert lines[-1].startswith("b OK [MODIFIED 2]")  # message 2 changed since
    assert [x.split(" FLAGS")[0] for x in lines[:-1]] == ["* 1 FETCH (UID 1", "* 3 FETCH (UID 3"]
    c.send(f"d FETCH 1:* (FLAGS) (CHANGEDSINCE {second})")
    lines = c.until("d")
    assert [x.split(" (")[0] for x in lines[:-1]] == ["* 1 FETCH", "* 3 FETCH"] and "MODSEQ" in lines[0]
    c.send("e STORE 4 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")
    assert c.until("e")[-1].startswith("e OK [MODIFIED 4]")


def test_esearch_modseq_is_that_of_the_returned_messages(imap, raw) -> None:  # type: ignore[no-untyped-def]
    """As imaptest's esearch-condstore: flags set in the order 1, 3, 2, 4."""
    c = selected(raw, imap, enable="CONDSTORE")
    ms = {}
    for n in (1, 3, 2, 4):
        c.send(f"a STORE {n} +FLAGS (\\Seen)")
        ms[n] = modseq_of(c.until("a")[0])
    for ret, seqs, since, want in (("MIN", "1:3", 1, f"MIN 1 MODSEQ {ms[1]}"),
                                   ("MAX", "1:3", 1, f"MAX 3 MODSEQ {ms[3]}"),
                                   ("", "1:3", 1, f"ALL 1:3 MODSEQ {ms[2]}"),
                                   ("MIN MAX", "2:3", 1, f"MIN 2 MAX 3 MODSEQ {ms[2]}"),
                                   ("ALL", "2:3", ms[2], f"ALL 2 MODSEQ {ms[2]}"),
                                   ("ALL", "2:3", ms[4], "")):
        c.send(f'x SEARCH RETURN ({ret}) {seqs} MODSEQ "/flags/\\\\seen" all {since}')
        assert c.until("x")[0] == ('* ESEARCH (TAG "x") ' + want).rstrip()


def test_qresync_select_reports_vanished_and_changed(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = selected(raw, imap, n=6, enable="QRESYNC")
    c.send("s SELECT INBOX")
    lines = c.until("s")
    validity, top = uidvalidity(lines), highest(lines)
    c.send("a STORE 2 +FLAGS (\\Answered)")
    c.until("a")
    c.send("b STORE 3,5 +FLAGS (\\Deleted)")
    c.until("b")
    c.send("x EXPUNGE")
    lines = c.until("x")
    assert lines[0] == "* VANISHED 3,5" and re.fullmatch(r"x OK \[HIGHESTMODSEQ \d+\] Expunge completed\.", lines[1])
    c.send("u UNSELECT")
    c.until("u")
    c.send(f"q SELECT INBOX (QRESYNC ({validity} {top}))")
    lines = c.until("q")
    assert "* VANISHED (EARLIER) 3,5" in lines
    changed = [x for x in lines if " FETCH " in x]
    assert changed == [f"* 2 FETCH (UID 2 FLAGS (\\Answered) MODSEQ ({modseq_of(changed[0])}))"]
    assert lines.index("* VANISHED (EARLIER) 3,5") < lines.index(changed[0])
    c.send(f"k SELECT INBOX (QRESYNC ({validity} {top} 1:4))")  # known UIDs: only 1 to 4
    lines = c.until("k")
    assert "* VANISHED (EARLIER) 3" in lines and len([x for x in lines if " FETCH " in x]) == 1
    c.send(f"w SELECT INBOX (QRESYNC ({validity + 1} {top}))")  # another UIDVALIDITY: a plain SELECT
    lines = c.until("w")
    assert not any("VANISHED" in x or " FETCH " in x for x in lines)
    c.send(f"y SELECT INBOX (QRESYNC ({validity} 0))")  # knows nothing: every UID that is gone
    lines = c.until("y")
    assert "* VANISHED (EARLIER) 3,5" in lines and len([x for x in lines if " FETCH " in x]) == 4


def test_uid_fetch_vanished_and_expunges_of_another_session(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = selected(raw, imap, n=5, enable="QRESYNC")
    c.send("f FETCH 1 (MODSEQ)")
    top = modseq_of(c.until("f")[0])
    c.send("s SELECT INBOX")
    top = highest(c.until("s"))
    other = raw()
    other.login()
    other.send("s SELECT INBOX")
    other.until("s")
    other.send("a STORE 2,4 +FLAGS (\\Deleted)")
    other.until("a")
    other.send("b STORE 1 +FLAGS (\\Seen)")
    other.until("b")
    other.send("x EXPUNGE")
    assert other.until("x")[:2] == ["* 4 EXPUNGE", "* 2 EXPUNGE"]  # no QRESYNC there
    c.send("n NOOP")
    lines = c.until("n")
    assert "* VANISHED 2,4" in lines and not any("EXPUNGE" in x for x in lines)
    c.send(f"v UID FETCH 1:* (FLAGS) (CHANGEDSINCE {top} VANISHED)")
    lines = c.until("v")
    assert lines[0] == "* VANISHED (EARLIER) 2,4"
    assert [x.split(" FLAGS")[0] for x in lines[1:-1]] == ["* 1 FETCH (UID 1"]
    c.send(f"w FETCH 1:* (FLAGS) (CHANGEDSINCE {top} VANISHED)")
    assert c.until("w")[-1].startswith("w BAD")  # VANISHED only with UID FETCH
    c.send("r FETCH 2 (FLAGS)")
    assert c.until("r")[0].startswith("* 2 FETCH (UID 3 FLAGS (")  # UIDs with QRESYNC


def test_qresync_needs_enable(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = selected(raw, imap, n=1, enable="CONDSTORE")
    c.send("s SELECT INBOX (QRESYNC (1 1))")
    assert c.until("s")[-1].startswith("s BAD")
    c.send("t SELECT INBOX (XFOO)")
    assert c.until("t")[-1].startswith("t BAD")
    c.send("u SELECT INBOX")
    c.until("u")
    c.send("v UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert c.until("v")[-1].startswith("v BAD")
    c.send("e ENABLE QRESYNC CONDSTORE")
    assert c.until("e")[0] == "* ENABLED QRESYNC"


@pytest.mark.parametrize("store_kind", ["maildir"])
def test_highestmodseq_in_status_and_select_agree(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = selected(raw, imap, n=2)
    c.send("a STORE 1 +FLAGS (\\Seen)")
    c.until("a")
    c.send("t STATUS INBOX (HIGHESTMODSEQ)")
    lines = c.until("t")
    status = int(lines[-2].split("HIGHESTMODSEQ ")[1].rstrip(")"))
    assert highest(lines) <= status  # enabled by STATUS: the selected mailbox's, then the folder's
    c.send("s SELECT INBOX")
    assert highest(c.until("s")) == status
