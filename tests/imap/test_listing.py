"""Unit tests for LIST/LSUB name selection (RFC 3501 §6.3.8-9, RFC 5258)."""

from __future__ import annotations

import pytest

from pymailsrv.imap.listing import check_options, list_entries, lsub_entries, pattern
from pymailsrv.store.base import FolderInfo

FOLDERS = [FolderInfo("INBOX"), FolderInfo("a", has_children=True, selectable=False),
           FolderInfo("a.b"), FolderInfo("c", special_use="\\Sent")]


def _rx(*pats: str):  # type: ignore[no-untyped-def]
    return [rx for rx in (pattern(b"", p.encode()) for p in pats) if rx is not None]


@pytest.mark.parametrize(("select", "ret", "ok"), [
    ((), (), True), (("SUBSCRIBED",), ("CHILDREN", "STATUS"), True),
    (("RECURSIVEMATCH", "SUBSCRIBED"), (), True), (("SPECIAL-USE", "RECURSIVEMATCH"), (), True),
    (("RECURSIVEMATCH",), (), False), (("RECURSIVEMATCH", "REMOTE"), (), False),
    (("IMAPTEST",), (), False), ((), ("IMAPTEST",), False),
])
def test_check_options(select: tuple[str, ...], ret: tuple[str, ...], ok: bool) -> None:
    assert (check_options(select, ret) is None) == ok


def test_invalid_mutf7_pattern_matches_nothing() -> None:
    assert pattern(b"", b"&'+,-%") is None
    assert pattern(b"", b"Entw&APw-rfe") is not None


def test_list_entries() -> None:
    got = {e.name: (e.attrs, e.childinfo) for e in list_entries(FOLDERS, ["a.b", "old"], _rx("*"))}
    assert got == {"INBOX": (("\\HasNoChildren",), ()), "a": (("\\Noselect", "\\HasChildren"), ()),
                   "a.b": (("\\HasNoChildren",), ()), "c": (("\\HasNoChildren", "\\Sent"), ())}
    got = {e.name: (e.attrs, e.childinfo)
           for e in list_entries(FOLDERS, ["a.b", "old.x"], _rx("%"), ("SUBSCRIBED", "RECURSIVEMATCH"))}
    assert got == {"a": (("\\Noselect", "\\HasChildren"), ("SUBSCRIBED",)),
                   "old": (("\\NonExistent",), ("SUBSCRIBED",))}
    got = {e.name: e.attrs for e in list_entries(FOLDERS, ["old.x"], _rx("*"), ("SUBSCRIBED",))}
    assert got == {"old.x": ("\\NonExistent", "\\Subscribed")}
    assert [e.name for e in list_entries(FOLDERS, [], _rx("*"), ("SPECIAL-USE",))] == ["c"]


def test_lsub_entries() -> None:
    got = {e.name: e.attrs for e in lsub_entries(FOLDERS, ["a.b", "x.y.z", "c"], _rx("%")[0])}
    assert got == {"a": ("\\Noselect",), "x": ("\\Noselect",), "c": ()}
    got = {e.name: e.attrs for e in lsub_entries(FOLDERS, ["a.b", "x.y.z", "c"], _rx("*")[0])}
    assert got == {"a.b": (), "x.y.z": (), "c": ()}
