"""IMAP dialogues over real sockets with a raw transcript client: auth, TLS, malformed input,
literals, mailbox management, LIST variants, extensions."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time

from pymailsrv.imap.server import ImapConfig
from pymailsrv.net import start_server
from tests.imap.conftest import PASSWORD, USERS, RawClient, msg


def test_literal_login_and_sasl_ir(raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.send(f"a LOGIN {{{len(USERS[0])}}}")
    c.expect("+ OK")
    c.send(f"{USERS[0]} {{{len(PASSWORD)}+}}\r\n{PASSWORD}")
    assert c.until("a")[-1].startswith("a OK [CAPABILITY IMAP4rev1")
    c2 = raw()
    ir = base64.b64encode(f"\0{USERS[0]}\0{PASSWORD}".encode()).decode()
    c2.send(f"b AUTHENTICATE PLAIN {ir}")
    assert c2.until("b")[-1].startswith("b OK")
    c3 = raw()
    c3.send("c AUTHENTICATE LOGIN")
    c3.expect("+ VXNlcm5hbWU6")
    c3.send(base64.b64encode(USERS[1].encode()))
    c3.expect("+ UGFzc3dvcmQ6")
    c3.send(base64.b64encode(PASSWORD.encode()))
    assert c3.until("c")[-1].startswith("c OK")
    c4 = raw()
    c4.send("d AUTHENTICATE PLAIN")
    c4.expect("+ ")
    c4.send("*")
    c4.expect("d BAD *aborted*")
    c4.send("e AUTHENTICATE PLAIN !!!notbase64")
    c4.expect("e BAD *")


def test_wrong_state_and_unknown_commands(raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.send("a SELECT INBOX")
    c.expect("a BAD Command not allowed in this state.")
    c.send("b FOOBAR")
    c.expect("b BAD Unknown command.")
    c.login()
    c.send("c FETCH 1 FLAGS")
    c.expect("c BAD Command not allowed in this state.")
    c.send("d LOGIN x y")
    c.expect("d BAD Command not allowed in this state.")


def test_error_budget_closes_session(imap_factory) -> None:  # type: ignore[no-untyped-def]
    h = imap_factory(error_limit=3)
    c = RawClient(h.port)
    c.expect("* OK *")
    for t in ("a", "b"):
        c.send(f"{t} BOGUS")
        c.expect(f"{t} BAD *")
    c.send("c BOGUS")
    c.expect("c BAD *")
    c.expect("* BYE Too many invalid IMAP commands.")
    assert c.closed()


def test_malformed_input_keeps_serving(raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.login()
    c.send("s SELECT INBOX")
    c.until("s")
    for i, line in enumerate(["FETCH 1 (FLAGS", "FETCH 0 FLAGS", "FETCH 4294967296 FLAGS", "SEARCH ((ALL)",
                              "FETCH 1:2 FLAGS", "STORE 1 +FLAGS (\\Bogus)"]):
        c.send(f"m{i} {line}")
        c.expect(f"m{i} BAD *")
    c.send("z NOOP")
    c.expect("z OK *")


def test_star_range_on_nonempty_and_uid(imap, raw) -> None:  # type: ignore[no-untyped-def]
    imap.deliver(msg("one"))
    c = raw()
    c.login()
    c.send("s SELECT INBOX")
    c.until("s")
    c.send("a FETCH *:* (UID)")
    assert c.until("a") == ["* 1 FETCH (UID 1)", "a OK Fetch completed."]
    c.send("b UID FETCH 5:* (FLAGS)")  # RFC 3501: "5:*" includes the highest UID even below 5
    assert c.until("b")[0].startswith("* 1 FETCH (UID 1 FLAGS")
    c.send("c UID FETCH 4294967295 (FLAGS)")
    c.expect("c OK *")


def test_huge_literal_refused_and_session_continues(raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.login()
    c.send("a APPEND INBOX {999999999}")
    c.expect("a NO [TOOBIG] *")
    c.send("b NOOP")
    c.expect("b OK *")
    c.send("c APPEND INBOX {999999999+}")
    c.expect("c BAD [TOOBIG] *")
    c.expect("* BYE *")
    assert c.closed()


def test_literals_before_login_are_small(raw) -> None:  # type: ignore[no-untyped-def]
    """Issue 13: before login no literal of the message size is accepted (no "+"), whatever the
    kind; after login APPEND may send them again."""
    c = raw()
    c.send("a LOGIN {10240000}")
    c.expect("a BAD [TOOBIG] *")
    c.send("b LOGIN {4000}")
    c.expect("+ OK")
    c.send("x" * 4000 + " {8000}")  # the whole command counts: over 8 KiB
    c.expect("b BAD [TOOBIG] *")
    c.login()
    c.send("d APPEND INBOX {20000}")
    c.expect("+ OK")
    c.send(("Subject: big\r\n\r\n" + "z" * 20000)[:20000])
    assert c.until("d")[-1].startswith("d OK [APPENDUID")
    c2 = raw()
    c2.send("e LOGIN {20000+}")
    c2.expect("e BAD [TOOBIG] *")
    c2.expect("* BYE *")
    assert c2.closed()


def test_a_long_id_before_login(raw) -> None:  # type: ignore[no-untyped-def]
    """RFC 2971 ID before login may be long (imaptest's id script sends 31 KB, Dovecot answers
    OK); any other command keeps the 8 KiB budget and gets a tagged BAD."""
    c = raw()
    pairs = " ".join(f'"k{i}" "{"v" * 1000}"' for i in range(30))
    c.send(f"a ID ({pairs})")
    assert c.until("a")[-1].startswith("a OK")
    c.send("b NOOP " + "x" * 9000)
    c.expect("b BAD [TOOBIG] *")
    c.send("c NOOP")
    c.expect("c OK *")


def test_literal_interrupted_by_disconnect(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.login()
    c.send("a APPEND INBOX {100}")
    c.expect("+ OK")
    c.sendraw(b"Subject: partial\r\n")
    c.close()
    time.sleep(0.2)
    c2 = raw()
    c2.login()
    c2.send("s STATUS INBOX (MESSAGES)")
    assert c2.until("s")[0] == '* STATUS "INBOX" (MESSAGES 0)'


def test_pipelined_commands_bounded(imap, raw, store_kind) -> None:  # type: ignore[no-untyped-def]
    """100,000 pipelined commands (mixed good and bad): every one answered in order; the server
    never buffers more than its high-water mark of unread input (the transport pauses)."""
    import threading

    c = raw()
    c.login()
    n = 100_000 if store_kind == "memory" else 10_000
    cmds = [b"p%d NOOP\r\n" % i if i % 10 else b"p%d FETCH 0 FLAGS\r\n" % i for i in range(n)]
    sender = threading.Thread(target=c.sendraw, args=(b"".join(cmds),))
    sender.start()
    for i in range(n):
        got = c.line()
        assert got.startswith(b"p%d OK NOOP" % i if i % 10 else b"p%d BAD " % i), got
    sender.join()
    c.send("z NOOP")
    c.expect("z OK *")


def test_starttls_plaintext_injection_refused(raw, client_tls: ssl.SSLContext) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.sendraw(b"a STARTTLS\r\nb LOGIN alice@example.test x\r\n")
    c.expect("a BAD *")
    c.expect("* BYE *")
    assert c.closed()


def test_starttls_then_login(raw, client_tls: ssl.SSLContext) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.send("a STARTTLS")
    c.expect("a OK Begin TLS negotiation now.")
    c.file.close()
    c.sock = client_tls.wrap_socket(c.sock)
    c.file = c.sock.makefile("rb")
    c.send("b CAPABILITY")
    caps = c.until("b")[0]
    assert "STARTTLS" not in caps and "AUTH=PLAIN" in caps
    c.login()


def test_implicit_tls(imap, client_tls: ssl.SSLContext) -> None:  # type: ignore[no-untyped-def]
    c = RawClient(imap.tls_port, tls=client_tls)
    c.expect("* OK [CAPABILITY *")
    c.login()
    c.close()


def test_logindisabled_for_remote_plaintext(imap) -> None:  # type: ignore[no-untyped-def]
    async def as_remote(conn):  # type: ignore[no-untyped-def]
        conn.peer_ip = "192.0.2.55"  # pretend the client is not local
        await imap.server.handle(conn)

    srv = imap.run(start_server(as_remote, "127.0.0.1", 0))
    try:
        c = RawClient(srv.port)
        greeting = c.line().decode()
        assert "LOGINDISABLED" in greeting and "AUTH=" not in greeting and "STARTTLS" in greeting
        c.send(f'a LOGIN {USERS[0]} "{PASSWORD}"')
        c.expect("a NO [PRIVACYREQUIRED] *")
        c.send("b AUTHENTICATE PLAIN =")
        c.expect("b NO [PRIVACYREQUIRED] *")
        c.close()
    finally:
        imap.run(srv.close(grace=1))


def test_auth_unavailable(imap, raw) -> None:  # type: ignore[no-untyped-def]
    imap.auth.unavailable = True
    c = raw()
    c.send(f'a LOGIN {USERS[0]} "{PASSWORD}"')
    c.expect("a NO [UNAVAILABLE] *")


def test_no_password_in_logs(raw, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("DEBUG", logger="pymailsrv")
    c = raw()
    c.send(f'a LOGIN {USERS[0]} "{PASSWORD}"')
    c.until("a")
    c.send('b LOGOUT')
    c.until("b")
    time.sleep(0.1)
    assert PASSWORD not in caplog.text
    assert "Login: user=<alice@example.test>" in caplog.text


def test_mailbox_management_and_list(raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.login()
    c.send('a LIST "" *')
    lines = c.until("a")
    assert '* LIST (\\HasNoChildren) "." "INBOX"' in lines
    assert any("\\Sent" in x and '"Sent"' in x for x in lines)
    assert any("\\Trash" in x for x in lines)
    c.send('b CREATE "Entw&APw-rfe"')
    c.expect("b OK *")
    c.send("c CREATE Projects.2024")
    c.expect("c OK *")
    c.send("d CREATE INBOX")
    c.expect("d NO [ALREADYEXISTS] *")
    c.send('e LIST "" "Proj*"')
    lines = c.until("e")
    assert any(x.startswith("* LIST (") and "\\HasChildren" in x and x.endswith('"Projects"') for x in lines)
    assert '* LIST (\\HasNoChildren) "." "Projects.2024"' in lines
    c.send('f LIST "" %')
    assert not any("2024" in x for x in c.until("f"))
    c.send('g LIST "" "Entw&APw-rfe"')
    assert c.until("g")[0] == '* LIST (\\HasNoChildren) "." "Entw&APw-rfe"'
    c.send("h RENAME Projects Work")
    c.expect("h OK *")
    c.send('i LIST "" "Work*"')
    assert len(c.until("i")) == 3
    c.send("j SUBSCRIBE Work")
    c.expect("j OK *")
    c.send('k LSUB "" *')
    assert '* LSUB () "." "Work"' in c.until("k")
    c.send('l LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES UIDNEXT))')
    lines = c.until("l")
    assert any("\\HasChildren" in x and "\\Subscribed" in x and x.endswith('"Work"') for x in lines)
    assert '* STATUS "Work" (MESSAGES 0 UIDNEXT 1)' in lines
    c.send("m1 CREATE Deep.Child")
    c.expect("m1 OK *")
    c.send("m2 SUBSCRIBE Deep.Child")
    c.expect("m2 OK *")
    c.send('m3 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    lines = c.until("m3")
    assert any(x.endswith('"Deep" ("CHILDINFO" ("SUBSCRIBED"))') for x in lines), lines
    c.send('m LIST (SPECIAL-USE) "" "*"')
    assert all("\\" in x for x in c.until("m")[:-1])
    c.send("n DELETE Work.2024")
    c.expect("n OK *")
    c.send("o DELETE INBOX")
    c.expect("o NO *")
    c.send("p SELECT Nope")
    c.expect("p NO [NONEXISTENT] *")
    c.send('q LIST "" ""')
    assert c.until("q")[0] == '* LIST (\\Noselect) "." ""'
    c.send("r CREATE ../escape")
    c.expect("r NO *")


def test_status_namespace_quota_id_enable(imap, raw) -> None:  # type: ignore[no-untyped-def]
    imap.deliver(msg("x"))
    c = raw()
    c.login()
    c.send("a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    line = c.until("a")[0]
    assert line.startswith('* STATUS "INBOX" (MESSAGES 1 RECENT 1 UIDNEXT 2 UIDVALIDITY ')
    c.send("b NAMESPACE")
    assert c.until("b")[0] == '* NAMESPACE (("" ".")) NIL NIL'
    c.send("c GETQUOTAROOT INBOX")
    lines = c.until("c")
    assert lines[0] == '* QUOTAROOT "INBOX" ""' and lines[1].startswith('* QUOTA "" (')
    c.send('d ID ("name" "test")')
    assert c.until("d")[0].startswith('* ID ("name" "pymailsrv"')
    c.send("e ENABLE CONDSTORE X-UNKNOWN")
    assert c.until("e")[0] == "* ENABLED CONDSTORE"
    c.send("f STATUS INBOX (BOGUS)")
    c.expect("f BAD *")


def test_examine_is_readonly(imap, raw) -> None:  # type: ignore[no-untyped-def]
    imap.deliver(msg("x"))
    c = raw()
    c.login()
    c.send("a EXAMINE INBOX")
    assert c.until("a")[-1] == "a OK [READ-ONLY] Examine completed."
    c.send("b STORE 1 +FLAGS (\\Seen)")
    c.expect("b NO [READ-ONLY] *")
    c.send("c FETCH 1 BODY[]")
    c.until("c")
    c.send("d FETCH 1 FLAGS")
    assert "\\Seen" not in c.until("d")[0]


def test_idle_push_from_delivery_and_other_session(imap, raw) -> None:  # type: ignore[no-untyped-def]
    imap.deliver(msg("first"))
    c = raw()
    c.login()
    c.send("s SELECT INBOX")
    c.until("s")
    other = raw()
    other.login()
    other.send("s SELECT INBOX")
    other.until("s")
    c.send("i IDLE")
    c.expect("+ idling")
    t0 = time.monotonic()
    imap.deliver(msg("second"))
    c.expect("* 2 EXISTS")
    c.expect("* * RECENT")
    assert time.monotonic() - t0 < 3.0  # "within a second"; slack for a loaded test machine
    other.send("f STORE 1 +FLAGS (\\Flagged)")
    other.until("f")
    c.expect("* 1 FETCH (FLAGS (*\\Flagged*))")
    other.send("g STORE 1 +FLAGS (\\Deleted)")
    other.until("g")
    c.expect("* 1 FETCH (FLAGS (*))")
    other.send("h EXPUNGE")
    other.until("h")
    c.expect("* 1 EXPUNGE")
    c.send("DONE")
    c.expect("i OK Idle completed.")


def test_no_expunge_during_fetch_store_search(imap, raw) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        imap.deliver(msg(f"m{i}"))
    a = raw()
    a.login()
    a.send("s SELECT INBOX")
    a.until("s")
    b = raw()
    b.login()
    b.send("s SELECT INBOX")
    b.until("s")
    b.send("x STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.until("x")
    b.send("y EXPUNGE")
    assert b.until("y")[0] == "* 2 EXPUNGE"
    a.send("f FETCH 1:3 (UID)")
    lines = a.until("f")
    assert not any("EXPUNGE" in x for x in lines)
    assert "* 3 FETCH (UID 3)" in lines  # numbers unchanged until we may be told
    a.send("g SEARCH ALL")
    lines = a.until("g")
    assert not any("EXPUNGE" in x for x in lines) and "* SEARCH 1 3" in lines
    a.send("n NOOP")
    lines = a.until("n")
    assert lines[0] == "* 2 EXPUNGE"
    a.send("h FETCH 2 (UID)")
    assert a.until("h")[0] == "* 2 FETCH (UID 3)"


def test_copy_move_uidplus(imap, raw) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        imap.deliver(msg(f"m{i}"))
    c = raw()
    c.login()
    c.send("s SELECT INBOX")
    c.until("s")
    c.send("a COPY 1:2 Trash")
    line = c.until("a")[-1]
    assert line.startswith("a OK [COPYUID ") and line.endswith(" 1:2 1:2] Copy completed.")
    c.send("b UID MOVE 3 Archive")
    lines = c.until("b")
    assert lines[0].startswith("* OK [COPYUID ") and lines[1] == "* 3 EXPUNGE"
    c.send("c COPY 1 Nowhere")
    c.expect("c NO [TRYCREATE] *")
    c.send("d STATUS Trash (MESSAGES)")
    assert c.until("d")[0] == '* STATUS "Trash" (MESSAGES 2)'
    c.send("e STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert c.until("e") == ["e OK Store completed."]
    c.send("f UID EXPUNGE 2")
    assert c.until("f") == ["* 2 EXPUNGE", "f OK Expunge completed."]
    c.send("g CLOSE")
    c.expect("g OK *")
    c.send("h STATUS INBOX (MESSAGES)")
    assert c.until("h")[0] == '* STATUS "INBOX" (MESSAGES 0)'


def test_append_nonsync_literal_and_trycreate(raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.login()
    body = b"Subject: lit\r\n\r\nbody\r\n"
    c.sendraw(b"a APPEND INBOX (\\Flagged $Work) {%d+}\r\n" % len(body) + body + b"\r\n")
    assert c.until("a")[-1].startswith("a OK [APPENDUID ")
    c.sendraw(b"b APPEND Missing {%d+}\r\n" % len(body) + body + b"\r\n")
    c.expect("b NO [TRYCREATE] *")
    c.send("s SELECT INBOX")
    lines = c.until("s")
    assert any(x.startswith("* FLAGS (") and "$Work" in x for x in lines)
    c.send("f FETCH 1 (FLAGS RFC822.SIZE BODY[])")
    line = c.until("f")[0]
    assert "\\Flagged" in line and "$Work" in line and f"RFC822.SIZE {len(body)}" in line


def test_partial_fetch_and_sections(imap, raw) -> None:  # type: ignore[no-untyped-def]
    imap.deliver(msg("part", body="0123456789\n"))
    c = raw()
    c.login()
    c.send("s SELECT INBOX")
    c.until("s")
    c.send("a FETCH 1 (BODY.PEEK[TEXT]<2.5>)")
    assert c.until("a")[0] == "* 1 FETCH (BODY[TEXT]<2> {5}\r\n23456)"
    c.send("b FETCH 1 (BODY.PEEK[TEXT]<100.5>)")
    assert c.until("b")[0] == "* 1 FETCH (BODY[TEXT]<100> {0}\r\n)"
    c.send("c FETCH 1 (BODY.PEEK[1])")
    assert c.until("c")[0] == "* 1 FETCH (BODY[1] {12}\r\n0123456789\r\n)"
    c.send("d FETCH 1 (BODY.PEEK[2])")
    assert c.until("d")[0] == "* 1 FETCH (BODY[2] {0}\r\n)"  # absent part: empty, as Dovecot
    c.send("e FETCH 1 (RFC822.SIZE BODY.PEEK[])")
    line = c.until("e")[0]
    size = int(line.split("RFC822.SIZE ")[1].split()[0])
    assert f"BODY[] {{{size}}}" in line


def test_sort_thread_esearch(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.login()
    for i, m in enumerate([msg("beta", frm="b@x.test"),  # APPEND: UIDs in this order (deliveries
                           msg("Re: alpha", frm="a@x.test",  # found in one scan may not be)
                               extra="In-Reply-To: <alpha@example.org>\n"),
                           msg("alpha", frm="c@x.test")]):
        c.sendraw(b"ap%d APPEND INBOX {%d+}\r\n" % (i, len(m)) + m + b"\r\n")
        c.until(f"ap{i}")
    c.send("s SELECT INBOX")
    c.until("s")
    c.send("a SORT (SUBJECT) UTF-8 ALL")
    assert c.until("a")[0] == "* SORT 2 3 1"
    c.send("b SORT (REVERSE FROM) UTF-8 ALL")
    assert c.until("b")[0] == "* SORT 3 1 2"
    c.send("c THREAD ORDEREDSUBJECT UTF-8 ALL")
    assert c.until("c")[0] == "* THREAD (1)(2 3)"
    c.send("d THREAD REFERENCES UTF-8 ALL")
    assert c.until("d")[0] == "* THREAD (1)(3 2)"
    c.send("e SEARCH RETURN (MIN MAX COUNT ALL) ALL")
    assert c.until("e")[0] == '* ESEARCH (TAG "e") MIN 1 MAX 3 COUNT 3 ALL 1:3'
    c.send("f UID SEARCH RETURN () SUBJECT nothing")
    assert c.until("f")[0] == '* ESEARCH (TAG "f") UID'
    c.send("g SEARCH CHARSET KOI8-R ALL")
    c.expect("g NO [BADCHARSET (UTF-8 US-ASCII)] *")


def test_graceful_shutdown_config_from_settings(settings_factory) -> None:  # type: ignore[no-untyped-def]
    cfg = ImapConfig.from_settings(settings_factory(message_size_limit="1000"))
    assert cfg.max_literal == 1000 and cfg.plaintext.disable_plaintext_auth
    assert asyncio  # imported for type use in other tests


def test_rename_inbox_moves_messages(imap, raw) -> None:  # type: ignore[no-untyped-def]
    imap.deliver(msg("one"))
    imap.deliver(msg("two"))
    c = raw()
    c.login()
    c.send("a RENAME INBOX Old")
    c.expect("a OK *")
    c.send("b STATUS Old (MESSAGES)")
    assert c.until("b")[0] == '* STATUS "Old" (MESSAGES 2)'
    c.send("c STATUS INBOX (MESSAGES)")
    assert c.until("c")[0] == '* STATUS "INBOX" (MESSAGES 0)'


def test_idle_keepalive_and_bad_done(imap_factory) -> None:  # type: ignore[no-untyped-def]
    h = imap_factory(idle_notify=0.3)
    c = RawClient(h.port)
    c.expect("* OK *")
    c.login()
    c.send("i IDLE")  # authenticated state: IDLE without a mailbox is allowed
    c.expect("+ idling")
    c.expect("* OK Still here")
    c.send("NOTDONE")
    c.expect("i BAD *")
    c.send("j NOOP")
    c.expect("j OK *")


def test_search_keys_over_socket(imap, raw) -> None:  # type: ignore[no-untyped-def]
    imap.deliver(msg("alpha", body="needle in body\n", extra="X-Tag: red\nCc: carol@example.test\n"))
    imap.deliver(msg("beta", body="nothing\n", frm="=?UTF-8?Q?J=C3=B6rg?= <j@example.de>"))
    c = raw()
    c.login()
    c.send("s SELECT INBOX")
    c.until("s")
    checks = {
        "ALL": "1 2", "BODY needle": "1", "TEXT red": "1", "HEADER X-Tag red": "1", "HEADER X-Tag \"\"": "1",
        "FROM \"jörg\"": "2", "CC carol": "1", "NOT CC carol": "2", "OR SUBJECT alpha SUBJECT beta": "1 2",
        "LARGER 10000": "", "SMALLER 10000": "1 2", "SENTON 2-Jan-2023": "1 2", "SENTBEFORE 1-Jan-2023": "",
        "SINCE 1-Jan-2000": "1 2", "BEFORE 1-Jan-2000": "", "NEW": "1 2", "RECENT": "1 2", "OLD": "",
        "UNSEEN": "1 2", "SEEN": "", "UID 2": "2", "2": "2", "1:*": "1 2", "KEYWORD $x": "", "UNKEYWORD $x": "1 2",
        "UNANSWERED UNDELETED UNDRAFT UNFLAGGED": "1 2", "CHARSET UTF-8 FROM {5+}\r\njörg": "2",
    }
    for i, (key, want) in enumerate(checks.items()):
        data = f"q{i} SEARCH {key}".encode()
        c.sendraw(data + b"\r\n")
        got = c.until(f"q{i}")
        assert got[0] == ("* SEARCH " + want).rstrip(), (key, got)


def test_max_userip_connections(imap_factory) -> None:  # type: ignore[no-untyped-def]
    h = imap_factory(max_userip=1)
    a = RawClient(h.port)
    a.expect("* OK *")
    a.login()
    b = RawClient(h.port)
    b.expect("* OK *")
    b.send(f'x LOGIN {USERS[0]} "{PASSWORD}"')
    b.expect("x NO [LIMIT] *")
    a.send("z LOGOUT")
    a.until("z")
    time.sleep(0.2)
    b.login()
    a.close()
    b.close()


def test_flag_searches_and_info_fetch_agree_with_the_general_paths(imap, raw) -> None:  # type: ignore[no-untyped-def]
    """SEARCH on flags only is decided once per flag set, FETCH of info items column by column:
    both must answer as the per-message paths do (a SEQ key and a header item force those)."""
    for i in range(6):
        imap.deliver(msg(f"m{i}"))
    first = raw()  # the first to select sees 1-6 as \Recent; the session under test sees only 7 so
    first.login()
    first.send("s SELECT INBOX")
    first.until("s")
    c = raw()
    c.login()
    c.send("s SELECT INBOX")
    c.until("s")
    c.send("t STORE 1,3 +FLAGS (\\Seen $Work)")
    c.send("u STORE 2,3,6 +FLAGS (\\Deleted \\Flagged)")
    c.until("t"), c.until("u")
    c.send("f0 FETCH 6 (UID)")  # sequence numbers known before the next message arrives
    c.until("f0")
    imap.deliver(msg("late"))
    c.send("n NOOP")
    c.until("n")
    keys = ["UNSEEN", "SEEN DELETED", "NOT DELETED", "OR FLAGGED SEEN", "NEW", "OLD", "RECENT",
            "KEYWORD $Work", "UNKEYWORD $Work", "NOT (UNSEEN OR DELETED NEW)", "ALL", "UNDELETED UNFLAGGED"]
    for i, key in enumerate(keys):
        c.send(f"a{i} SEARCH {key}")
        c.send(f"b{i} SEARCH 1:* {key}")
        c.send(f"c{i} UID SEARCH {key}")
        c.send(f"d{i} UID SEARCH UID 1:* {key}")
        fast, general = c.until(f"a{i}")[0], c.until(f"b{i}")[0]
        assert fast == general, key
        assert c.until(f"c{i}")[0] == c.until(f"d{i}")[0], key
    c.send("f FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE)")
    c.send("g FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (X-NONE)])")
    columns = [x for x in c.until("f") if x.startswith("* ")]
    per_message = [x.replace(' BODY[HEADER.FIELDS (X-NONE)] {2}\r\n\r\n', "") for x in c.until("g")[:-1]]
    assert columns == per_message and [int(x.split()[1]) for x in columns] == list(range(1, 8))
    assert [("\\Recent" in x, "$Work" in x) for x in columns] == [
        (False, True), (False, False), (False, True), (False, False), (False, False), (False, False), (True, False)]
    c.send("r SEARCH RECENT")
    assert c.until("r")[0] == "* SEARCH 7"
