"""The strace log checker of tests/write_order.py on synthetic logs: it accepts a 250 sent after
the message's data, its name and its directory were flushed, and refuses each missing step."""

from __future__ import annotations

from tests.write_order import Expect, check, parse, unescape

HOME = "/v/vmail/d.test/u0"
HOME1 = "/v/vmail/d.test/u1"
SPOOL = "/v/spool"
ONE = {"AAA1": Expect(b"tok-1", frozenset({HOME}))}
SOCK = "11<TCP:[127.0.0.1:2525->127.0.0.1:40000]>"


def _fs(path: str) -> int:
    return 1  # one filesystem


def maildir_delivery(*, data_sync: bool = True, dir_sync: bool = True, home: str = HOME,
                     name: str = "m1", token: str = "tok-1") -> list[str]:
    tmp, new = f"{home}/tmp/{name}", f"{home}/new/{name}"
    lines = [
        f'100 1.0 openat(AT_FDCWD</srv>, "{tmp}", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 15<{tmp}>',
        f'100 1.1 write(15<{tmp}>, "Return-Path: <a@b>\\nSubject: {token}\\n\\nhi\\n", 40) = 40',
    ]
    if data_sync:
        lines.append(f"101 1.2 fsync(15<{tmp}>) = 0")
    lines.append(f'101 1.3 rename("{tmp}", "{new}") = 0')
    if dir_sync:
        lines += [f'101 1.4 openat(AT_FDCWD</srv>, "{home}/new", O_RDONLY|O_CLOEXEC|O_DIRECTORY) = 15<{home}/new>',
                  f"101 1.5 fsync(15<{home}/new>) = 0"]
    return lines


def ack(qid: str = "AAA1") -> str:
    return f'100 2.0 sendto({SOCK}, "250 2.0.0 Ok: queued as {qid}\\r\\n", 37, 0, NULL, 0) = 37'


def test_good_log_passes() -> None:
    report = check([*maildir_delivery(), ack()], ONE, SPOOL, _fs)
    assert report.acked == {"AAA1"}
    assert report.failures == []


def test_missing_directory_fsync_fails_with_the_lines() -> None:
    report = check([*maildir_delivery(dir_sync=False), ack()], ONE, SPOOL, _fs)
    assert len(report.failures) == 1
    assert f"no fsync of {HOME}/new" in report.failures[0]
    assert "rename(" in report.failures[0] and "queued as AAA1" in report.failures[0]


def test_missing_data_fsync_fails() -> None:
    report = check([*maildir_delivery(data_sync=False), ack()], ONE, SPOOL, _fs)
    assert len(report.failures) == 1
    assert "no fsync of its data" in report.failures[0]


def test_flushes_after_the_250_do_not_count() -> None:
    lines = maildir_delivery()
    report = check([*lines[:3], ack(), *lines[3:]], ONE, SPOOL, _fs)
    assert report.failures and "no file holding its token had got a final name" in report.failures[0]


def test_data_fsync_after_the_rename_fails() -> None:
    lines = maildir_delivery()  # open, write, fsync, rename, open dir, fsync dir
    report = check([lines[0], lines[1], lines[3], lines[2].replace("tmp/m1", "new/m1"), *lines[4:], ack()],
                   ONE, SPOOL, _fs)
    assert report.failures and "no fsync of its data" in report.failures[0]


def test_group_commit_by_syncfs_passes_and_needs_the_second_syncfs() -> None:
    tmp, new = f"{HOME}/tmp/m1", f"{HOME}/new/m1"
    lines = [
        f'100 1.0 openat(AT_FDCWD</srv>, "{tmp}", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 15<{tmp}>',
        f'100 1.1 write(15<{tmp}>, "Subject: tok-1\\n\\nhi\\n", 20) = 20',
        f"101 1.2 syncfs(15<{tmp}>) = 0",
        f'101 1.3 rename("{tmp}", "{new}") = 0',
        f"101 1.4 syncfs(15<{new}>) = 0",
    ]
    assert check([*lines, ack()], ONE, SPOOL, _fs).failures == []
    assert check([*lines[:4], ack()], ONE, SPOOL, _fs).failures
    other_fs = check([*lines, ack()], ONE, SPOOL, lambda p: p.startswith(f"{HOME}/tmp"))
    assert other_fs.failures, "a syncfs of another filesystem flushes nothing of this one"


def test_spool_commit_is_enough_and_incoming_is_not_final() -> None:
    inc, act = f"{SPOOL}/incoming/AAA1", f"{SPOOL}/active/AAA1"
    lines = [
        f'100 1.0 openat(AT_FDCWD</srv>, "{inc}", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 9<{inc}>',
        f'100 1.1 write(9<{inc}>, "PYMQ1 10 20\\n{{}}\\nSubject: tok-1\\n\\nhi\\n", 40) = 40',
        f"101 1.2 fsync(9<{inc}>) = 0",
        f'101 1.3 rename("{inc}", "{act}") = 0',
        f"101 1.4 fsync(10<{SPOOL}/active>) = 0",
    ]
    assert check([*lines, ack()], ONE, SPOOL, _fs).failures == []
    not_moved = [*lines[:3], f"101 1.4 fsync(10<{SPOOL}/incoming>) = 0", ack()]
    assert check(not_moved, ONE, SPOOL, _fs).failures


def test_two_maildirs_without_a_spool_copy_need_both() -> None:
    both = {"AAA1": Expect(b"tok-1", frozenset({HOME, HOME1}))}
    first = maildir_delivery()
    second = [x.replace("15<", "16<").replace("m1", "m2") for x in maildir_delivery(home=HOME1, dir_sync=False)]
    assert check([*first, *second, ack()], both, SPOOL, _fs).failures
    second_ok = [x.replace("m1", "m2") for x in maildir_delivery(home=HOME1)]
    assert check([*first, *second_ok, ack()], both, SPOOL, _fs).failures == []


def test_calls_split_by_other_threads_start_and_end_at_their_own_lines() -> None:
    tmp, new = f"{HOME}/tmp/m1", f"{HOME}/new/m1"
    lines = [
        f'[pid 100] 1.0 openat(AT_FDCWD</srv>, "{tmp}", O_WRONLY|O_CREAT|O_EXCL, 0600) = 15<{tmp}>',
        f'[pid 100] 1.1 write(15<{tmp}>, "Subject: tok-1\\n", 15) = 15',
        f"[pid 101] 1.2 fsync(15<{tmp}> <unfinished ...>",
        f"[pid 100] 1.3 sendto({SOCK}, \"250 2.1.5 Ok\\r\\n\", 14, 0, NULL, 0) = 14",
        "[pid 101] 1.4 <... fsync resumed>) = 0",
        f'[pid 101] 1.5 renameat(AT_FDCWD</srv>, "{tmp}", AT_FDCWD</srv>, "{new}") = 0',
        f"[pid 101] 1.6 fsync(16<{HOME}/new> <unfinished ...>",
    ]
    assert [c.name for c in parse(lines)] == ["openat", "write", "sendto", "fsync", "renameat"]
    assert check([*lines, ack()], ONE, SPOOL, _fs).failures, "the dir fsync had not returned"
    done = [*lines, "[pid 101] 1.7 <... fsync resumed>) = 0", ack()]
    assert check(done, ONE, SPOOL, _fs).failures == []


def test_relative_names_resolve_against_the_dirfd_and_errors_do_not_count() -> None:
    tmp = f"{HOME}/tmp/m1"
    lines = maildir_delivery()
    lines[3] = f'101 1.3 renameat2(3<{HOME}>, "tmp/m1", 3<{HOME}>, "new/m1", RENAME_NOREPLACE) = 0'
    assert check([*lines, ack()], ONE, SPOOL, _fs).failures == []
    failed = maildir_delivery()
    failed[2] = f"101 1.2 fsync(15<{tmp}>) = -1 EIO (Input/output error)"
    assert check([*failed, ack()], ONE, SPOOL, _fs).failures


def test_unescape_reads_strace_literals() -> None:
    assert unescape(r"a\r\n\t\"\\\x41\101\0") == b'a\r\n\t"\\AA\x00'


def test_a_folder_made_during_the_run_needs_its_own_entry_flushed() -> None:
    folder = f"{HOME}/.Archive"
    made = [f'101 0.5 mkdir("{folder}", 0777) = 0',
            f'101 0.6 mkdirat(AT_FDCWD</srv>, "{folder}/new", 0777) = 0']
    lines = maildir_delivery(home=folder)
    archived = {"AAA1": Expect(b"tok-1", frozenset({folder}))}
    report = check([*made, *lines, ack()], archived, SPOOL, _fs)
    assert report.failures and f"its directory {folder}/new was made" in report.failures[0]
    flushed = [*made, f"101 0.7 fsync(3<{folder}>) = 0", f"101 0.8 fsync(3<{HOME}>) = 0"]
    assert check([*flushed, *lines, ack()], archived, SPOOL, _fs).failures == []
    only_one = [*made, f"101 0.7 fsync(3<{folder}>) = 0"]
    report = check([*only_one, *lines, ack()], archived, SPOOL, _fs)
    assert report.failures and f"its directory {folder} was made" in report.failures[0]
