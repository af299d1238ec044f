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
