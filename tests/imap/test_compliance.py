"""Behaviours that Dovecot's imaptest compliance scripts check, as our own transcripts over a real
socket (imaptest is not needed to run them): LIST-EXTENDED and LSUB (RFC 5258, RFC 3501 §6.3.9),
ENVELOPE addresses (RFC 3501 §7.4.2), SEARCH on addresses and sent dates (§6.4.4), SORT and
THREAD (RFC 5256)."""

from __future__ import annotations

from tests.imap.conftest import RawClient


def _session(raw, select: str | None = None) -> RawClient:  # type: ignore[no-untyped-def]
    c = raw()
    c.login()
    if select:
        c.send(f"s SELECT {select}")
        assert c.until("s")[-1].startswith("s OK")
    return c


def _ok(c: RawClient, tag: str, command: str) -> list[str]:
    c.send(f"{tag} {command}")
    lines = c.until(tag)
    assert lines[-1].startswith(f"{tag} OK"), lines
    return lines[:-1]


def _one(c: RawClient, tag: str, command: str) -> str:
    lines = _ok(c, tag, command)
    assert len(lines) == 1, lines
    return lines[0]


def _deliver(imap, *messages: str) -> None:  # type: ignore[no-untyped-def]
    for m in messages:
        imap.deliver(m.replace("\n", "\r\n").encode())


# --- LIST / LSUB ---------------------------------------------------------------------------------

def test_list_extended_rejects_unknown_options(raw) -> None:  # type: ignore[no-untyped-def]
    c = _session(raw)
    for i, bad in enumerate(['LIST (imaptest) "" ""', 'LIST (RECURSIVEMATCH) "" ""',
                             'LIST (RECURSIVEMATCH REMOTE) "" ""', 'LIST "" "" RETURN (imaptest)',
                             'LIST (RECURSIVEMATCH) "" "*"']):
        c.send(f"b{i} {bad}")
        c.expect(f"b{i} BAD *")
    _ok(c, "o1", 'LIST (REMOTE) "" %')
    _ok(c, "o2", 'LIST (SUBSCRIBED REMOTE RECURSIVEMATCH) "" % RETURN (CHILDREN SUBSCRIBED SPECIAL-USE)')


def test_list_subscribed_shows_deleted_names_as_nonexistent(raw) -> None:  # type: ignore[no-untyped-def]
    c = _session(raw)
    for name in ("box.one", "box.gone"):
        _ok(c, "c", f"CREATE {name}")
        _ok(c, "s", f"SUBSCRIBE {name}")
    _ok(c, "d", "DELETE box.gone")
    lines = _ok(c, "l", 'LIST (SUBSCRIBED) "" "box.*"')
    assert sorted(lines) == ['* LIST (\\HasNoChildren \\Subscribed) "." "box.one"',
                             '* LIST (\\NonExistent \\Subscribed) "." "box.gone"']
    assert all("box.gone" not in x for x in _ok(c, "p", 'LIST "" "box.*"'))


def test_list_childinfo_only_for_children_the_patterns_miss(raw) -> None:  # type: ignore[no-untyped-def]
    c = _session(raw)
    for name in ("t.a.child", "t.b.child", "t.b.other"):
        _ok(c, "c", f"CREATE {name}")
    for name in ("t.a.child", "t.b.other"):
        _ok(c, "s", f"SUBSCRIBE {name}")
    sub_rec = 'LIST (SUBSCRIBED RECURSIVEMATCH) ""'
    assert _ok(c, "l1", sub_rec + ' "t.%"') == ['* LIST (\\HasChildren) "." "t.a" ("CHILDINFO" ("SUBSCRIBED"))',
                                                '* LIST (\\HasChildren) "." "t.b" ("CHILDINFO" ("SUBSCRIBED"))']
    # the subscribed child is matched too: it is listed itself, so the parent isn't
    assert _ok(c, "l2", sub_rec + ' ("t.a" "t.a.child")') == [
        '* LIST (\\HasNoChildren \\Subscribed) "." "t.a.child"']
    assert _ok(c, "l3", sub_rec + ' "t*child"') == ['* LIST (\\HasNoChildren \\Subscribed) "." "t.a.child"']
    # t.b.other isn't matched by "t*child", so t.b reports it
    assert _ok(c, "l4", sub_rec + ' "t*b"') == ['* LIST (\\HasChildren) "." "t.b" ("CHILDINFO" ("SUBSCRIBED"))']


def test_lsub_reports_an_unsubscribed_parent_as_noselect(raw) -> None:  # type: ignore[no-untyped-def]
    c = _session(raw)
    for name in ("m.top", "m.mid.leaf", "m.other.leaf"):
        _ok(c, "c", f"CREATE {name}")
        _ok(c, "s", f"SUBSCRIBE {name}")
    assert sorted(_ok(c, "l1", 'LSUB "" m.%')) == ['* LSUB () "." "m.top"', '* LSUB (\\Noselect) "." "m.mid"',
                                                   '* LSUB (\\Noselect) "." "m.other"']
    assert sorted(_ok(c, "l2", 'LSUB "" *leaf')) == ['* LSUB () "." "m.mid.leaf"', '* LSUB () "." "m.other.leaf"']
    _ok(c, "u", "UNSUBSCRIBE m.mid.leaf")
    _ok(c, "d", "DELETE m.other.leaf")  # a subscription outlives its folder (RFC 3501 §6.3.6)
    assert sorted(_ok(c, "l3", 'LSUB "" m.*')) == ['* LSUB () "." "m.other.leaf"', '* LSUB () "." "m.top"']


def test_list_pattern_takes_every_atom_char(raw) -> None:  # type: ignore[no-untyped-def]
    c = _session(raw)
    _ok(c, "a", "LIST \"\" !#$&'+,-.0123456789:;<=>?@^_`|[}%*")  # not valid mUTF-7: matches nothing
    c.send("b SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}")
    c.expect("b NO *")
    _ok(c, "c", 'LIST "" ~foo')


# --- ENVELOPE ------------------------------------------------------------------------------------

def test_envelope_keeps_display_names_groups_and_routes(imap, raw) -> None:  # type: ignore[no-untyped-def]
    _deliver(imap, "Date: Thu, 15 Feb 2007 01:02:03 +0200\n"
                   "From: user@domain (Real Name)\n"
                   "Sender: =?utf-8?q?J=C3=B6rg?= <j@x.test>\n"
                   "Reply-To: <@route1,@route2:user@domain>\n"
                   "To: group: g1@d1.org, \"Quoted, Name\" <g2@d2.org>;, group2: g3@d3.org (c (nested));\n"
                   "Cc: empty:;, other: (just a comment) ;\n\nbody\n")
    c = _session(raw, "INBOX")
    assert _one(c, "f", "FETCH 1 ENVELOPE") == (
        '* 1 FETCH (ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" NIL '
        '(("Real Name" NIL "user" "domain")) (("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x.test")) '
        '((NIL "@route1,@route2" "user" "domain")) '
        '((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")("Quoted, Name" NIL "g2" "d2.org")(NIL NIL NIL NIL)'
        '(NIL NIL "group2" NIL)("c (nested)" NIL "g3" "d3.org")(NIL NIL NIL NIL)) '
        '((NIL NIL "empty" NIL)(NIL NIL NIL NIL)(NIL NIL "other" NIL)(NIL NIL NIL NIL)) NIL NIL NIL))')


# --- SEARCH --------------------------------------------------------------------------------------

def test_search_address_keys_match_whole_addresses(imap, raw) -> None:  # type: ignore[no-untyped-def]
    _deliver(imap,
             "From: user-from@domain.org\nTo: user-to@domain.org\n\n1\n",
             "From: RealFrom <user-from@domain.org>\nTo: RealTo <user-to@domain.org>\n\n2\n",
             "From: <user-from (comment)@ (comment) domain.org>\n\n3\n",
             "From: user-from@domain.org (RealFrom)\nCc: =?utf-8?q?J=C3=B6rg?= <j@x.test>\n\n4\n",
             "From: a@b.test\nTo: groupname: groupuser1@domain.org,\n groupuser2@domain.org;, other:;\n\n5\n")
    c = _session(raw, "INBOX")
    checks = {"FROM user-from@domain.org": "1 2 3 4", "FROM realfrom": "2 4", "FROM ealfro": "2 4",
              "TO realto": "2", "TO user-to@domain.org": "1 2", "CC {5+}\r\njörg": "4", "CC \"Jörg <j@x\"": "4",
              "TO groupname": "5", "TO groupuser2": "5", "TO other": "5", "TO groupuser3": "",
              "FROM comment": "", "HEADER FROM comment": "3", "TO \"\"": "1 2 5"}
    for i, (key, want) in enumerate(checks.items()):
        assert _one(c, f"q{i}", f"SEARCH CHARSET UTF-8 {key}") == ("* SEARCH " + want).rstrip(), key


def test_sent_date_keys_use_the_date_headers_own_day(imap, raw) -> None:  # type: ignore[no-untyped-def]
    for date in ("Sat, 24 Mar 2007 23:00:00 +0200", "Sun, 25 Mar 2007 00:00:00 +0200",
                 "Sun, 25 Mar 2007 23:00:00 +0300", "Mon, 26 Mar 2007 00:00:00 -1100"):
        _deliver(imap, f"From: a@b.test\nDate: {date}\n\nbody\n")
    c = _session(raw, "INBOX")
    checks = {"SENTBEFORE 25-Mar-2007": "1", "SENTON 25-Mar-2007": "2 3", "SENTSINCE 25-Mar-2007": "2 3 4",
              "SENTON 26-Mar-2007": "4", "NOT SENTON 25-Mar-2007": "1 4", "SENTBEFORE 24-Mar-2007": ""}
    for i, (key, want) in enumerate(checks.items()):
        assert _one(c, f"q{i}", f"SEARCH {key}") == ("* SEARCH " + want).rstrip(), key


# --- SORT / THREAD -------------------------------------------------------------------------------

def test_sort_subject_uses_the_base_subject(imap, raw) -> None:  # type: ignore[no-untyped-def]
    subjects = ["a", "C", "b", "_", "[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b (a)", "Re: [FWD: c]",
                "[xyz]", None, "=?iso-8859-1?q?_?=", "Re: =?utf-8?q?b?=", "=?iso-8859-1?q?RE:_C?=",
                "=?us-ascii?b?UmU6IGM=?=", "Ad: Re: Ad: Re: Ad: x", "re: [fwd: [fwd: re: [fwd: babylon]]]"]
    for n, subject in enumerate(subjects, 1):
        _deliver(imap, f"From: a@b.test\nMessage-ID: <{n}@x>\n" + (f"Subject: {subject}\n" if subject else "")
                 + f"\n{'x' * 100 * n}\n")  # sizes grow with n
    c = _session(raw, "INBOX")
    assert _one(c, "a", "SORT (SUBJECT) US-ASCII ALL") == "* SORT 9 10 1 14 3 5 11 6 15 2 7 12 13 8 4"
    assert _one(c, "b", "SORT (REVERSE SUBJECT) US-ASCII ALL") == "* SORT 4 8 2 7 12 13 15 6 3 5 11 14 1 9 10"
    assert _one(c, "c", "SORT (SUBJECT REVERSE SIZE) US-ASCII ALL") == "* SORT 10 9 1 14 11 5 3 6 15 13 12 7 2 8 4"


def test_thread_references_puts_a_reply_under_its_subject(imap, raw) -> None:  # type: ignore[no-untyped-def]
    _deliver(imap,
             "Message-Id: <a@b>\nSubject: foo\nDate: Fri, 22 Feb 2008 15:06:23 +0000\n\nbody\n",
             "Message-Id: <a@b>\nSubject: Re: foo\nDate: Fri, 22 Feb 2008 15:06:24 +0000\n\nbody\n",
             "Message-Id: <c@b>\nReferences: <missing@b>\nSubject: Re: foo\n"
             "Date: Fri, 22 Feb 2008 15:06:25 +0000\n\nbody\n",
             "Message-Id: <d@b>\nSubject: bar\nDate: Fri, 22 Feb 2008 15:06:26 +0000\n\nbody\n",
             "Message-Id: <e@b>\nSubject: bar\nDate: Fri, 22 Feb 2008 15:06:27 +0000\n\nbody\n")
    c = _session(raw, "INBOX")
    # two replies (one a duplicate Message-ID, one under a missing parent) join "foo"; two
    # messages of the same subject, neither a reply, become siblings under a dummy
    assert _one(c, "t", "THREAD REFERENCES US-ASCII ALL") == "* THREAD (1 (2)(3))((4)(5))"
