"""Ownership and modes of what the server keeps: its directories (data, queue, Maildirs, ACME
state) belong to the user it runs as (the owner of data_directory) and are not writable by
others; private keys are readable by that owner only, as Postfix's ``postfix check`` and
Dovecot's startup warnings ask."""

from __future__ import annotations

import os
import pwd
import stat

from pymailsrv.config.settings import Settings
from pymailsrv.doctor.report import Report
from pymailsrv.errors import ConfigError
from pymailsrv.tls.files import acme_directory
from pymailsrv.tls.sni import read_table

# directories that hold mail or secrets: nobody but the owner need read them
PRIVATE_DIRECTORIES = ("queue_directory", "virtual_mailbox_base")


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_files(settings: Settings, report: Report) -> None:
    data = settings.get_str("data_directory")
    try:
        owner = os.stat(data).st_uid
    except FileNotFoundError:
        report.error("data_directory", f"{data} does not exist", [f"pymailsrv init --data-dir {data}"], label="fix")
        return
    _check_directory(report, "data_directory", data, owner, private=False)
    for name in PRIVATE_DIRECTORIES:
        _check_directory(report, name, settings.get_str(name), owner, private=True)
    acme = acme_directory(settings)
    if os.path.isdir(acme):
        _check_directory(report, "ACME state", acme, owner, private=True)
        for entry in sorted(os.listdir(acme)):
            if entry.endswith(".pem"):
                _check_key_file(report, f"ACME {entry}", os.path.join(acme, entry), owner)
    if settings.get_str("database_url").startswith("sqlite"):
        path = settings.expanded("database_url").split("///", 1)[-1].split("?", 1)[0]
        if os.path.isfile(path):
            _check_key_file(report, "database file", path, owner, secret="password hashes")
    for param in ("tls_key_file", "smtpd_tls_key_file"):
        if param in settings.names() and settings.get_str(param):
            _check_key_file(report, param, settings.get_str(param), owner)
    for spec in settings.get_list("tls_server_sni_maps"):
        try:
            table = read_table(spec)
        except ConfigError:
            continue  # the certificate checks report it
        for name, files in table.items():
            for path in files:
                if _holds_private_key(path):
                    _check_key_file(report, f"SNI {name}", path, owner)
    _check_log_target(settings, report)
    euid = os.geteuid()
    if euid not in (0, owner):
        report.warning("doctor", f"runs as {_user(euid)}, not as {_user(owner)} (the owner of {data}) "
                       "or root: some files may not be readable here")


def _check_directory(report: Report, subject: str, path: str, owner: int, *, private: bool) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        report.warning(subject, f"{path} does not exist yet (pymailsrv serve creates it)")
        return
    if not stat.S_ISDIR(st.st_mode):
        report.error(subject, f"{path} is not a directory")
        return
    mode = stat.S_IMODE(st.st_mode)
    problems = []
    if st.st_uid != owner:
        problems.append(f"owned by {_user(st.st_uid)}, not {_user(owner)}")
    if mode & 0o002:
        problems.append(f"writable by everyone (mode {mode:04o})")
    if problems:
        report.error(subject, f"{path}: " + "; ".join(problems),
                     [f"chown -R {_user(owner)} {path}", f"chmod o-w {path}"], label="fix")
    elif private and mode & 0o007:
        report.warning(subject, f"{path}: readable by others (mode {mode:04o}); mail and keys are private",
                       [f"chmod o-rwx {path}"], label="fix")
    else:
        report.ok(subject, f"{path} (owner {_user(st.st_uid)}, mode {mode:04o})")


def _check_key_file(report: Report, subject: str, path: str, owner: int, *, secret: str = "") -> None:
    """A file holding a private key (an error when everyone may read it) or other ``secret``s (a
    warning): the server's user alone should read it."""
    try:
        st = os.stat(path)
    except OSError as exc:
        report.error(subject, f"{path}: {exc.strerror}")
        return
    mode = stat.S_IMODE(st.st_mode)
    fix = [f"chmod 600 {path}"]
    if mode & 0o004:
        (report.warning if secret else report.error)(
            subject, f"{path} is readable by everyone (mode {mode:04o}){f': it holds {secret}' if secret else ''}",
            fix, "fix")
    elif mode & 0o040:
        report.warning(subject, f"{path} is readable by its group (mode {mode:04o})", fix, "fix")
    elif st.st_uid not in (owner, 0):
        report.warning(subject, f"{path} is owned by {_user(st.st_uid)}: the server ({_user(owner)}) "
                       "may not read it", [f"chown {_user(owner)} {path}"], label="fix")
    else:
        report.ok(subject, f"{path} (owner {_user(st.st_uid)}, mode {mode:04o})")


def _holds_private_key(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return b"PRIVATE KEY-----" in fh.read()
    except OSError:
        return True  # unreadable: _check_key_file says so


def _check_log_target(settings: Settings, report: Report) -> None:
    """Where the lines go can take them: log_file's directory, the syslog socket, the journal's."""
    target = settings.get_str("log_target")
    if target == "file" and settings.get_str("log_file"):
        directory = os.path.dirname(os.path.abspath(settings.get_str("log_file")))
        if not os.path.isdir(directory):
            report.error("log_file", f"{directory} does not exist", [f"mkdir -p {directory}"], "fix")
        else:
            report.ok("log_file", settings.get_str("log_file"))
    elif target == "syslog" and settings.get_str("syslog_address").startswith("/"):
        address = settings.get_str("syslog_address")
        if stat.S_ISSOCK(os.stat(address).st_mode) if os.path.exists(address) else False:
            report.ok("log_target", f"syslog to {address}")
        else:
            report.warning("log_target", f"syslog: {address} is not a socket (is a syslog daemon running?); "
                           "lines go to standard error meanwhile")
    elif target == "journald":
        socket_path = settings.get_str("journald_socket")
        if os.path.exists(socket_path):
            report.ok("log_target", f"journald at {socket_path}")
        else:
            report.info("log_target", f"journald: {socket_path} is missing (not under systemd?): lines go to "
                        "standard error with <N> severity prefixes")
