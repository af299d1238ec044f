"""The pure IMAP parser: every command form, malformed variants, chunked transcripts, hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymailsrv.imap.grammar import Command, FetchArgs, Section, StoreArgs
from pymailsrv.imap.parser import Bad, CommandParser, Limits, NeedContinuation
from pymailsrv.imap.search import SearchKey


def events(data: bytes, **kw: int) -> list[object]:
    p = CommandParser(Limits(**kw))
    p.feed(data)
    out = []
    while (e := p.next()) is not None:
        out.append(e)
    return out


def one(line: str) -> Command:
    evs = events(line.encode() + b"\r\n")
    assert len(evs) == 1 and isinstance(evs[0], Command), evs
    return evs[0]


def bad(line: bytes | str) -> Bad:
    data = line.encode() if isinstance(line, str) else line
    evs = events(data + b"\r\n")
    assert len(evs) == 1 and isinstance(evs[0], Bad), evs
    return evs[0]


VALID = [
    "a CAPABILITY", "a NOOP", "a LOGOUT", "a STARTTLS", "a LOGIN user pass", 'a LOGIN "us er" "p\\"w"',
    "a AUTHENTICATE PLAIN", "a AUTHENTICATE PLAIN AGFsaWNlAHB3", "a AUTHENTICATE PLAIN =",
    "a SELECT INBOX", "a SELECT INBOX (CONDSTORE)", "a EXAMINE Sent", 'a CREATE "New Folder"',
    "a CREATE Archive (USE (\\Archive))", "a DELETE x", "a RENAME a b", "a SUBSCRIBE x", "a UNSUBSCRIBE x",
    'a LIST "" *', 'a LIST "" %', "a LIST ~ INBOX.*", 'a LIST (SUBSCRIBED) "" *',
    'a LIST "" (INBOX Sent) RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))',
    'a LSUB "" *', "a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)", "a CHECK", "a CLOSE",
    "a UNSELECT", "a EXPUNGE", "a UID EXPUNGE 1:3,5", "a IDLE", "a NAMESPACE", "a ID NIL",
    'a ID ("name" "mutt" "version" NIL)', "a ENABLE CONDSTORE", "a GETQUOTA \"\"", "a GETQUOTAROOT INBOX",
    "a SEARCH ALL", "a SEARCH CHARSET UTF-8 SUBJECT x", "a SEARCH RETURN (MIN MAX) UNSEEN",
    "a SEARCH OR (SEEN FLAGGED) NOT DELETED", "a SEARCH 1:*,5 UID 3:4 LARGER 10 SMALLER 100",
    'a SEARCH SINCE 1-Jan-2020 BEFORE "2-Feb-2021" ON 3-Mar-2022 SENTSINCE 1-Jan-2020',
    'a SEARCH HEADER X-Spam "yes" TEXT hello BODY "x y" FROM a TO b CC c BCC d KEYWORD $Junk',
    "a SEARCH NEW OLD RECENT ANSWERED UNANSWERED DRAFT UNDRAFT UNKEYWORD foo MODSEQ 5",
    "a FETCH 1 ALL", "a FETCH 1:* FAST", "a FETCH * FULL", "a FETCH 1,2,3 (FLAGS UID)",
    "a FETCH 1 (BODY[] BODY.PEEK[HEADER] BODY[1.2.MIME] BODY[TEXT]<0.100> RFC822 RFC822.HEADER)",
    "a FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Received X-Spam)] BODYSTRUCTURE ENVELOPE INTERNALDATE)",
    "a FETCH 1:* (FLAGS) (CHANGEDSINCE 12)", "a FETCH 1 BODY", "a FETCH 1 RFC822.SIZE",
    "a STORE 1 FLAGS (\\Seen)", "a STORE 1:* +FLAGS.SILENT (\\Deleted $Junk)", "a STORE 1 -FLAGS \\Seen",
    "a STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)", "a COPY 1:3 Trash", "a MOVE 1 Trash",
    "a UID FETCH 1:* (FLAGS)", "a UID STORE 5 +FLAGS (\\Seen)", "a UID COPY 5 x", "a UID MOVE 5 x",
    "a UID SEARCH ALL", "a SORT (REVERSE DATE SUBJECT) UTF-8 ALL", "a THREAD REFERENCES UTF-8 ALL",
    "a UID SORT (ARRIVAL) US-ASCII UNSEEN", "a UID THREAD ORDEREDSUBJECT UTF-8 ALL", "a XUNKNOWN foo bar",
    "a FETCH *:* FLAGS",
]


@pytest.mark.parametrize("line", VALID)
def test_valid_commands_parse(line: str) -> None:
    cmd = one(line)
    assert cmd.tag == "a"


MALFORMED = [
    "a FETCH 0 FLAGS", "a FETCH 4294967296 FLAGS", "a FETCH 1: FLAGS", "a FETCH x FLAGS", "a FETCH 1 (FLAGS",
    "a FETCH 1 (FLAGS))", "a FETCH 1 (BODY[HEADER.FIELDS (A)])x", "a FETCH 1 BODY[1.HEADER.FIELDS ()]",
    "a FETCH 1 (BODY[MIME])", "a FETCH 1 (BODY[2.FOO])", "a FETCH 1 (BOGUS)", "a FETCH 1 BODY[]<0.0>",
    "a STORE 1 FLAGS", "a STORE 1 XFLAGS (\\Seen)", "a LOGIN onlyuser", 'a LOGIN "unterminated pass',
    "a SELECT", "a SELECT INBOX extra", "a SEARCH", "a SEARCH FOO", "a SEARCH SINCE 32-Foo-2020",
    "a SEARCH (", "a SEARCH OR SEEN", "a STATUS INBOX ()", "a LIST", "a APPEND INBOX", "a UID",
    "a UID FETCH", "a CAPABILITY extra", "a ENABLE", "a ID (\"a\")", "a LOGIN a \"b\\x\"",
    "a SEARCH " + "(" * 100 + "ALL" + ")" * 100, "a COPY 1", "a SORT DATE UTF-8 ALL",
]


@pytest.mark.parametrize("line", MALFORMED)
def test_malformed_commands_are_bad(line: str) -> None:
    b = bad(line)
    assert b.tag == "a" and not b.fatal


def test_untagged_garbage() -> None:
    assert bad("").tag == "*"
    assert bad("(((").tag == "*"
    assert bad(b"\x00\x01").tag == "*"


def test_fetch_structure() -> None:
    cmd = one("t1 UID FETCH 1:*,7 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<10.20>)")
    assert cmd.name == "UID FETCH" and cmd.uid
    args = cmd.args
    assert isinstance(args, FetchArgs)
    assert args.seqset == ((1, None), (7, 7))
    att = args.atts[1]
    assert att.peek and att.partial == (10, 20)
    assert att.section == Section((1, 2), "HEADER.FIELDS", ("FROM", "TO"))
    assert att.section.spec() == "1.2.HEADER.FIELDS (FROM TO)"


def test_store_and_search_structure() -> None:
    s = one("a STORE 2:4 -FLAGS.SILENT (\\Deleted Junk)").args
    assert s == StoreArgs(((2, 4),), "remove", True, ("\\Deleted", "Junk"))
    k = one("a SEARCH NOT OR SEEN 1:2").args.key
    assert k == SearchKey(
        "NOT", children=(SearchKey("OR", children=(SearchKey("FLAG", "\\Seen"), SearchKey("SEQ", ((1, 2),)))),))


def test_literals_sync_and_nonsync() -> None:
    evs = events(b"a LOGIN {5}\r\nal ce {3+}\r\np w\r\n")
    assert evs[0] == NeedContinuation(5)
    assert isinstance(evs[1], Command) and evs[1].args == (b"al ce", b"p w")


def test_literal_too_big_refused_before_allocation() -> None:
    p = CommandParser(Limits(max_literal=1000))
    p.feed(b"a APPEND INBOX {999999999}\r\n")
    e = p.next()
    assert isinstance(e, Bad) and e.kind == "NO" and e.code == "TOOBIG" and not e.fatal
    assert p.buffered == 0
    p.feed(b"b NOOP\r\n")
    assert isinstance(p.next(), Command)
    p.feed(b"c APPEND INBOX {999999999+}\r\n")
    e = p.next()
    assert isinstance(e, Bad) and e.fatal


def test_command_budget_counts_literals() -> None:
    """The pre-login budget (issue 13): every byte of a command counts, literals included; a
    synchronizing literal over it is refused as the limits say, a LITERAL+ one ends the session."""
    p = CommandParser(Limits(max_line=100, max_literal=100, max_command=100, sync_refusal="BAD"))
    p.feed(b"a LOGIN {10240000}\r\n")
    e = p.next()
    assert isinstance(e, Bad) and e.kind == "BAD" and e.code == "TOOBIG" and not e.fatal
    p.feed(b"b LOGIN {40}\r\n")
    assert p.next() == NeedContinuation(40)
    p.feed(b"x" * 40 + b" {50}\r\n")  # 40 + 50 + the text lines: over 100
    e = p.next()
    assert isinstance(e, Bad) and e.tag == "b" and e.kind == "BAD" and p.buffered == 0
    p.feed(b"c LOGIN {60+}\r\n" + b"y" * 60 + b" {60+}\r\n")
    e = p.next()
    assert isinstance(e, Bad) and e.tag == "c" and e.fatal


def test_long_line_skipped_then_next_command() -> None:
    p = CommandParser(Limits(max_line=100))
    p.feed(b"a NOOP " + b"x" * 150)
    e = p.next()
    assert isinstance(e, Bad) and e.tag == "a" and e.code == "TOOBIG"
    p.feed(b"y" * 500 + b"\r\nb NOOP\r\n")
    e = p.next()
    assert isinstance(e, Command) and e.tag == "b"
    assert p.buffered == 0


def test_long_command_over_many_literals_capped() -> None:
    p = CommandParser(Limits(max_line=200))
    p.feed(b"a LOGIN {1+}\r\nx" + b" {1+}\r\nx" * 100)
    kinds = []
    while (e := p.next()) is not None:
        kinds.append(type(e).__name__)
    assert "Bad" in kinds


def test_raw_lines_for_sasl_and_done() -> None:
    p = CommandParser()
    p.feed(b"AGFsaWNlAHB3\r\nDONE\r\na NOOP\r\n")
    assert p.read_line() == b"AGFsaWNlAHB3"
    assert p.read_line() == b"DONE"
    assert isinstance(p.next(), Command)


TRANSCRIPT = (
    b"a1 CAPABILITY\r\n"
    b"a2 LOGIN {5+}\r\nalice {11}\r\ns3cret pass\r\n"
    b"a3 SELECT INBOX\r\n"
    b"a4 APPEND INBOX (\\Seen) \" 1-Jan-2020 10:00:00 +0100\" {24}\r\nSubject: x\r\n\r\nhi there\r\n\r\n"
    b"a5 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.1024>)\r\n"
    b"a6 UID SEARCH OR FROM \"bob\" SUBJECT {3+}\r\nx y UNDELETED\r\n"
    b"a7 STORE 1 +FLAGS (\\Deleted)\r\n"
    b"a8 LIST \"\" *\r\n"
    b"a9 FETCH 0 FLAGS\r\n"
    b"a10 LOGOUT\r\n"
)


def run(data_chunks: list[bytes]) -> list[object]:
    p = CommandParser()
    out: list[object] = []
    for chunk in data_chunks:
        p.feed(chunk)
        while (e := p.next()) is not None:
            out.append(e)
    return out


def test_transcript_chunked() -> None:
    whole = run([TRANSCRIPT])
    assert len([e for e in whole if isinstance(e, Command)]) == 9
    size = 1
    while size <= 512:
        chunks = [TRANSCRIPT[i: i + size] for i in range(0, len(TRANSCRIPT), size)]
        assert run(chunks) == whole, size
        size *= 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TRANSCRIPT)), max_size=20))
def test_any_split_gives_same_commands(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [TRANSCRIPT[a:b] for a, b in zip([0, *points], [*points, len(TRANSCRIPT)], strict=True)]
    assert run(chunks) == run([TRANSCRIPT])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    p = CommandParser(Limits(max_line=200, max_literal=100))
    p.feed(data + b"\r\n")
    for _ in range(1000):
        if p.next() is None:
            break


def test_parse_cache_keeps_tags_apart() -> None:
    a = one("x1 UID FETCH 1:* (FLAGS)")
    b = one("x2 UID FETCH 1:* (FLAGS)")
    assert (a.tag, b.tag) == ("x1", "x2") and a.args == b.args and b.uid
    assert bad("x{ UID FETCH 1:* (FLAGS)").tag in ("*", "x")


def test_content_cache_bounded() -> None:
    from pymailsrv.imap.cache import ContentCache

    c = ContentCache(max_bytes=1000)
    for i in range(100):
        c.put(("u", "INBOX", 1, i, "h"), b"x" * 50)
    assert c.size <= 1000 and len(c) == 20
    assert c.get(("u", "INBOX", 1, 99, "h")) == b"x" * 50
    assert c.get(("u", "INBOX", 1, 0, "h")) is None


@pytest.mark.parametrize("shape", [
    "FETCH {} (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])", "FETCH {} FLAGS",
    "UID FETCH {} (FLAGS) (CHANGEDSINCE 5)", "STORE {} +FLAGS.SILENT (\\Deleted)", "uid store {} -flags \\Seen",
    "STORE {} (UNCHANGEDSINCE 9) FLAGS ($x)", "COPY {} Archive", "UID MOVE {} \"Sent Items\"",
])
def test_same_shape_with_another_sequence_set_parses_as_the_full_grammar(shape: str) -> None:
    """The parse of a FETCH/STORE/COPY/MOVE is reused for the same text after another sequence
    set: the result must be what the full grammar gives, errors included."""
    from pymailsrv.imap.grammar import _parse, parse_command

    for i, seqset in enumerate(["1", "5:7", "1:*", "3,9:*,12", "*:4"]):
        line = f"t{i} {shape.format(seqset)}".encode()
        assert parse_command([line]) == _parse([line]), line
    for i, broken in enumerate(["0", "1::2", "4:", ",5", "1:0"]):
        line = f"b{i} {shape.format(broken)}".encode()
        got = parse_command([line])
        assert isinstance(got, Bad) and got == _parse([line]), line
