"""store.sievedir: Dovecot's script layout, names, quota arithmetic, the active link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pymailsrv.store.sievedir import Quota, ScriptError, SieveDir, active_script_path, check_name


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "tab\there", "nl\nx", "del\x7f", "c1\x85", "ls\u2028",
                                  "x" * 300])
def test_bad_names(name: str) -> None:
    with pytest.raises(ScriptError):
        check_name(name)


@pytest.mark.parametrize("name", ["filters", "Mein Filter", "urlaub-2024", "日本語", "a.b"])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


def test_layout_is_dovecots(tmp_path: Path) -> None:
    d = SieveDir(str(tmp_path))
    d.put("main", b"keep;\r\n")
    d.set_active("main")
    assert os.readlink(active_script_path(str(tmp_path))) == "sieve/main.sieve"
    assert (tmp_path / ".dovecot.sieve").read_bytes() == b"keep;\r\n"
    assert d.list() == [("main", True)]
    assert not list((tmp_path / "sieve" / "tmp").iterdir())  # nothing left behind


def test_a_link_elsewhere_is_not_an_active_script(tmp_path: Path) -> None:
    (tmp_path / "other.sieve").write_text("keep;")
    os.symlink("other.sieve", tmp_path / ".dovecot.sieve")
    d = SieveDir(str(tmp_path))
    d.put("a", b"keep;")
    assert d.list() == [("a", False)]
    d.set_active("a")  # a link is replaced
    assert d.active() == "a"


def test_a_regular_active_file_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / ".dovecot.sieve").write_text("# hand-made\nkeep;\n")
    d = SieveDir(str(tmp_path))
    d.put("a", b"keep;")
    with pytest.raises(ScriptError):
        d.set_active("a")
    assert (tmp_path / ".dovecot.sieve").read_text().startswith("# hand-made")


def test_quota_counts_the_replacement_once(tmp_path: Path) -> None:
    d = SieveDir(str(tmp_path), Quota(max_scripts=2, max_storage=100, max_script_size=80))
    d.put("a", b"x" * 50)
    d.put("a", b"x" * 80)  # replaces: 80 of 100
    with pytest.raises(ScriptError) as exc:
        d.put("b", b"x" * 30)
    assert exc.value.code == "QUOTA/MAXSIZE"
    d.put("b", b"x" * 20)
    with pytest.raises(ScriptError) as exc:
        d.put("c", b"")
    assert exc.value.code == "QUOTA/MAXSCRIPTS"
    with pytest.raises(ScriptError) as exc:
        d.check_space("a", 81)
    assert exc.value.code == "QUOTA/MAXSIZE"
