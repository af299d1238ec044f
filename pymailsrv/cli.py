"""The ``pymailsrv`` command: serve, reload, log reopen, init, db, domain/mailbox/alias admin, pw,
auth, queue, cert, dkim, doctor, stats, sieve, postconf, postmap, import-config. Each subcommand is a thin
adapter over the package that does the work; errors are one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from pymailsrv.acme import REVOCATION_REASONS
from pymailsrv.errors import ConfigError, ConfigErrors, PymailsrvError

DEFAULT_CONFIG = "/etc/pymailsrv/pymailsrv.conf"

Handler = Callable[[argparse.Namespace], int]


def _config_path(args: argparse.Namespace) -> str:
    return args.config or os.environ.get("PYMAILSRV_CONFIG") or DEFAULT_CONFIG


def load_settings(args: argparse.Namespace) -> Any:
    """The Settings of ``--config`` / $PYMAILSRV_CONFIG; the built-in defaults if the default
    path does not exist (so ``postconf -d`` and ``pw hash`` work before ``init``)."""
    from pymailsrv.config.settings import Settings

    path = _config_path(args)
    if not args.config and not os.environ.get("PYMAILSRV_CONFIG") and not os.path.exists(path):
        return Settings()
    return Settings.load(path)


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)


# --- passwords: from the command line, standard input or the terminal ------------------------
def _stdin_line() -> str:
    """One line of standard input without its line end."""
    if sys.stdin is None:
        raise PymailsrvError("no password: standard input is closed")
    line = sys.stdin.buffer.readline()
    if not line:
        raise PymailsrvError("no password on standard input")
    # bytes that are not UTF-8 stay surrogate escapes: a check sees the very bytes given
    return line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")


def _ask(prompt: str) -> str:
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise PymailsrvError("no password given") from None


def new_password(args: argparse.Namespace, *, piped: bool = True) -> str:
    """A password to store: UTF-8 text, what PostfixAdmin's forms send (and what a cleartext
    setting stores as it is). Asked twice on a terminal."""
    password = read_password(args, "Enter new password: ", confirm=True, piped=piped)
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise PymailsrvError("the password is not UTF-8 text") from None
    return password


def read_password(args: argparse.Namespace, prompt: str, *, confirm: bool = False, piped: bool = True) -> str:
    """The password argument; else ``--password-stdin``'s line; else asked on the terminal (twice
    with ``confirm``, as doveadm pw asks); else, with ``piped``, one line of standard input (as
    ``doveadm pw`` reads a piped password). Never a traceback for a missing terminal or input."""
    if args.password is not None:
        return str(args.password)
    if getattr(args, "password_stdin", False):
        return _stdin_line()
    if sys.stdin is not None and sys.stdin.isatty():
        first = _ask(prompt)
        if confirm and _ask("Retype new password: ") != first:
            raise PymailsrvError("fatal: Passwords don't match!")
        return first
    if piped:
        return _stdin_line()
    raise PymailsrvError("a password is required: --password PASSWORD or --password-stdin")


# --- subcommand handlers (each imports its implementation lazily) ---------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from pymailsrv import app

    if args.demo:
        return app.serve(None, config_path=_config_path(args), demo=True)
    return app.serve(load_settings(args), config_path=_config_path(args), worker=args.worker or "")


def cmd_init(args: argparse.Namespace) -> int:
    from pymailsrv import app

    return app.init(args, config_path=_config_path(args))


def cmd_sieve(args: argparse.Namespace) -> int:
    from pymailsrv.sieve import tool

    extensions = load_settings(args).get_list("sieve_extensions") or None
    if args.action == "check":
        return tool.check(args.script, extensions, sys.stdout)
    return tool.test(args.script, args.message, args.sender, args.recipient, extensions, sys.stdout)


def cmd_postconf(args: argparse.Namespace) -> int:
    from pymailsrv.config.postconf import postconf

    return postconf(load_settings(args), args.names, defaults=args.d, non_default=args.n,
                    expand=args.x, out=sys.stdout)


def cmd_postmap(args: argparse.Namespace) -> int:
    from pymailsrv.policy.postmap import postmap

    return run_async(postmap(load_settings(args), args.query, args.table, out=sys.stdout))


def cmd_db(args: argparse.Namespace) -> int:
    from pymailsrv.db import admin

    return run_async(admin.cli_db(load_settings(args), args))


def cmd_directory(args: argparse.Namespace) -> int:
    from pymailsrv.auth import pacrypt
    from pymailsrv.db import admin

    settings = load_settings(args)
    if args.object != "mailbox" or args.action not in ("add", "passwd"):
        return run_async(admin.cli(settings, args))
    encrypt = pacrypt.from_settings(settings)  # a bad setting is reported before any prompt
    args.password = new_password(args, piped=False)
    return run_async(admin.cli(settings, args, hash_password=encrypt.hash))


def cmd_pw(args: argparse.Namespace) -> int:
    from pymailsrv.auth import tools

    settings = load_settings(args)
    if args.action == "hash":
        args.password = new_password(args)
    elif args.action == "verify":
        args.password = read_password(args, "Enter password to verify: ")
    return tools.cli_pw(settings, args)


def cmd_auth(args: argparse.Namespace) -> int:
    from pymailsrv.auth import tools

    settings = load_settings(args)
    args.password = read_password(args, "Password: ")
    return run_async(tools.cli_auth(settings, args))


def cmd_queue(args: argparse.Namespace) -> int:
    from pymailsrv.queue import admin

    return run_async(admin.cli(load_settings(args), args))


def cmd_signal(args: argparse.Namespace) -> int:
    """``reload`` (SIGHUP) and ``log reopen`` (SIGUSR1) to the running server's main process."""
    import signal

    from pymailsrv import app

    sig = signal.SIGHUP if args.command == "reload" else signal.SIGUSR1
    pid = app.signal_master(load_settings(args), sig)
    print(f"pymailsrv: {'reloading' if sig == signal.SIGHUP else 'reopening the log of'} pid {pid}")
    return 0


def cmd_cert(args: argparse.Namespace) -> int:
    """``cert status|renew|revoke``; renew and revoke tell a running server (SIGUSR2, SIGHUP)."""
    from pymailsrv import app
    from pymailsrv.acme import admin

    settings = load_settings(args)

    def signal_master(sig: int) -> int | None:
        try:
            return app.signal_master(settings, sig)
        except ConfigError:  # not running
            return None

    return admin.cli(settings, args, signal_master=signal_master)


def cmd_doctor(args: argparse.Namespace) -> int:
    """``doctor [--quick] [--no-dns]``: like ``postfix check``, plus DNS advice; 1 on errors."""
    from pymailsrv.doctor import run

    return run_async(run(load_settings(args), sys.stdout, quick=args.quick, dns=not args.no_dns,
                         config_path=_config_path(args)))
def cmd_import_config(args: argparse.Namespace) -> int:
    from pymailsrv.migrate.command import run

    return run(args.postfix, args.dovecot, args.out, check=not args.no_check, out=sys.stdout, err=sys.stderr)
def cmd_stats(args: argparse.Namespace) -> int:
    from pymailsrv.ops import report

    return report.cli(load_settings(args))
def cmd_dkim(args: argparse.Namespace) -> int:
    """``dkim keygen DOMAIN`` (a key and its DNS record), ``dkim check DOMAIN`` (DNS has the key?)."""
    from pymailsrv.senderauth import admin

    settings = load_settings(args)
    if args.action == "keygen":
        return admin.keygen(args, os.path.join(settings.get_str("data_directory"), "dkim"), sys.stdout)
    from pymailsrv.policy.checks_spf import resolver_lookup
    from pymailsrv.policy.dns import Resolver
    from pymailsrv.senderauth.keys import SigningTable

    key_table, signing_table = settings.get_str("dkim_key_table"), settings.get_str("dkim_signing_table")
    if not (key_table and signing_table):
        raise ConfigError("dkim check: set dkim_key_table and dkim_signing_table")
    lookup = resolver_lookup(Resolver(settings.get_list("dns_nameservers")))
    return run_async(admin.check(args.domain, SigningTable.load(key_table, signing_table), lookup, sys.stdout))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pymailsrv", description=__doc__.splitlines()[0])
    p.add_argument("--config", "-c",
                   help=f"configuration file (default $PYMAILSRV_CONFIG or {DEFAULT_CONFIG})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the server")
    s.add_argument("--demo", action="store_true",
                   help="run the demo: ./data with a demo domain and mailbox on localhost ports")
    s.add_argument("--worker", default="", help=argparse.SUPPRESS)  # started by serve itself
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("init", help="write a configuration, create the database and a certificate")
    s.add_argument("--data-dir", default=None, help="data directory (default: ./data)")
    s.add_argument("--hostname", default=None, help="this host's name (default: the machine's FQDN)")
    s.add_argument("--demo", action="store_true", help="also add a demo domain and mailbox, local ports")
    s.add_argument("--force", action="store_true", help="overwrite an existing configuration")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("postconf", help="print parameters, like Postfix's postconf")
    s.add_argument("-d", action="store_true", help="print defaults")
    s.add_argument("-n", action="store_true", help="print only parameters set in the file")
    s.add_argument("-x", action="store_true", help="expand $name references")
    s.add_argument("names", nargs="*")
    s.set_defaults(func=cmd_postconf)

    s = sub.add_parser("postmap", help="query a lookup table: postmap -q KEY type:name")
    s.add_argument("-q", dest="query", required=True, metavar="KEY")
    s.add_argument("table", metavar="type:name")
    s.set_defaults(func=cmd_postmap)

    s = sub.add_parser("db", help="database schema")
    dsub = s.add_subparsers(dest="action", required=True)
    dsub.add_parser("upgrade", help="create or upgrade the PostfixAdmin schema")
    dsub.add_parser("current", help="show the schema version")
    s.set_defaults(func=cmd_db)

    s = sub.add_parser("domain", help="hosted domains")
    dsub = s.add_subparsers(dest="action", required=True)
    a = dsub.add_parser("add")
    a.add_argument("domain")
    a.add_argument("--description", default="")
    a.add_argument("--transport", default="virtual")
    a.add_argument("--backupmx", action="store_true")
    dsub.add_parser("list")
    for verb in ("del", "disable", "enable"):
        dsub.add_parser(verb).add_argument("domain")
    s.set_defaults(func=cmd_directory, object="domain")

    s = sub.add_parser("mailbox", help="mailboxes")
    dsub = s.add_subparsers(dest="action", required=True)
    a = dsub.add_parser("add")
    a.add_argument("address")
    a.add_argument("--password")
    a.add_argument("--password-stdin", action="store_true")
    a.add_argument("--name", default="")
    a.add_argument("--quota", type=int, default=0, help="quota in MB (times quota_multiplier)")
    a = dsub.add_parser("passwd")
    a.add_argument("address")
    a.add_argument("--password")
    a.add_argument("--password-stdin", action="store_true")
    a = dsub.add_parser("list")
    a.add_argument("domain", nargs="?")
    for verb in ("del", "disable", "enable"):
        dsub.add_parser(verb).add_argument("address")
    s.set_defaults(func=cmd_directory, object="mailbox")

    s = sub.add_parser("alias", help="aliases")
    dsub = s.add_subparsers(dest="action", required=True)
    a = dsub.add_parser("add")
    a.add_argument("address")
    a.add_argument("goto", help="target[,target…]")
    a = dsub.add_parser("list")
    a.add_argument("domain", nargs="?")
    dsub.add_parser("del").add_argument("address")
    s.set_defaults(func=cmd_directory, object="alias")

    s = sub.add_parser("alias-domain", help="alias domains")
    dsub = s.add_subparsers(dest="action", required=True)
    a = dsub.add_parser("add")
    a.add_argument("alias_domain")
    a.add_argument("target_domain")
    dsub.add_parser("list")
    dsub.add_parser("del").add_argument("alias_domain")
    s.set_defaults(func=cmd_directory, object="alias-domain")

    s = sub.add_parser("resolve", help="show where mail for an address goes")
    s.add_argument("address")
    s.set_defaults(func=cmd_directory, object="resolve", action="resolve")

    s = sub.add_parser("pw", help="passwords")
    dsub = s.add_subparsers(dest="action", required=True)
    a = dsub.add_parser("hash", help="hash a password as postfixadmin_encrypt stores it, or like doveadm pw")
    how = a.add_mutually_exclusive_group()
    how.add_argument("--encrypt", "-e", help="a PostfixAdmin $CONF['encrypt'] value (default: postfixadmin_encrypt)")
    how.add_argument("--scheme", "-s", help="a Dovecot scheme: {SCHEME}hash, as doveadm pw -s writes it")
    a.add_argument("--password", "-p", help="the password (default: asked twice on a terminal, else a line of stdin)")
    a.add_argument("--rounds", "-r", type=int, default=0, help="rounds/cost (default: the scheme's)")
    dsub.add_parser("list", help="list the password schemes, like doveadm pw -l")
    a = dsub.add_parser("verify", help="check a password against a stored hash")
    a.add_argument("hash")
    a.add_argument("--password", "-p")
    s.set_defaults(func=cmd_pw)

    s = sub.add_parser("auth", help="authentication")
    dsub = s.add_subparsers(dest="action", required=True)
    a = dsub.add_parser("test", help="check a login, like doveadm auth test")
    a.add_argument("address")
    a.add_argument("password", nargs="?")
    s.set_defaults(func=cmd_auth)

    s = sub.add_parser("queue", help="the mail queue, like mailq/postqueue/postsuper")
    dsub = s.add_subparsers(dest="action", required=True)
    dsub.add_parser("list")
    dsub.add_parser("flush").add_argument("queue_id", nargs="?")
    for verb in ("delete", "hold", "release", "requeue"):
        dsub.add_parser(verb).add_argument("queue_id")
    s.set_defaults(func=cmd_queue)

    s = sub.add_parser("cert", help="TLS certificates: status; renew or revoke the ACME certificate")
    dsub = s.add_subparsers(dest="action", required=True)
    dsub.add_parser("status", help="the certificates the listeners serve, their names and expiry")
    a = dsub.add_parser("renew", help="renew the ACME certificate now, due or not")
    a.add_argument("--timeout", type=float, default=300, help="seconds to wait for a running server (300)")
    a = dsub.add_parser("revoke", help="revoke the ACME certificate; a running server gets a new one")
    a.add_argument("--reason", default="unspecified", choices=REVOCATION_REASONS)
    s.set_defaults(func=cmd_cert)

    s = sub.add_parser("doctor", help="check permissions, certificates, ports, database and DNS records")
    s.add_argument("--quick", action="store_true",
                   help="only whether the server answers on its ports and control socket (a health check)")
    s.add_argument("--no-dns", action="store_true", help="skip the DNS records (MX, SPF, DKIM, DMARC, PTR)")
    s.set_defaults(func=cmd_doctor)
    s = sub.add_parser("import-config", help="write a pymailsrv.conf for a Postfix + Dovecot site, with a report")
    s.add_argument("--postfix", metavar="DIR", help="Postfix's configuration directory (main.cf, master.cf)")
    s.add_argument("--dovecot", metavar="DIR", help="Dovecot's configuration directory (dovecot.conf)")
    s.add_argument("--out", metavar="FILE", help="write the configuration here (default: standard output; "
                   "the report then goes to standard error)")
    s.add_argument("--no-check", action="store_true", help="do not read the database to check that every "
                   "mailbox's Maildir is where the written configuration looks")
    s.set_defaults(func=cmd_import_config)
    s = sub.add_parser("stats", help="mail received, sent, bounced, rejected… over the last day, week, month "
                       "and year; the queue and sessions (the statistics page's figures)")
    s.set_defaults(func=cmd_stats)
    s = sub.add_parser("dkim", help="DKIM signing keys: make one and print its DNS record; check DNS")
    dsub = s.add_subparsers(dest="action", required=True)
    a = dsub.add_parser("keygen", help="write a key (0600) and print the TXT record to publish")
    a.add_argument("domain")
    a.add_argument("--selector", "-s", default="", help="selector (default: default, or ed25519)")
    a.add_argument("--algorithm", "-a", choices=("rsa", "ed25519"), default="rsa")
    a.add_argument("--bits", type=int, default=2048, choices=(1024, 2048, 3072, 4096), help="RSA key size")
    a.add_argument("--directory", "-D", default="", help="where to write DOMAIN/SELECTOR.private "
                                                         "(default $data_directory/dkim)")
    dsub.add_parser("check", help="does DNS publish the key of each selector that signs for DOMAIN?"
                    ).add_argument("domain")
    s.set_defaults(func=cmd_dkim)
    s = sub.add_parser("sieve", help="Sieve scripts: check one, or show what it would do with a message")
    dsub = s.add_subparsers(dest="action", required=True)
    dsub.add_parser("check", help="compile a script; errors with line and column").add_argument("script")
    a = dsub.add_parser("test", help="the actions a script would take on a message (nothing is done)")
    a.add_argument("script")
    a.add_argument("message")
    a.add_argument("-f", "--from", dest="sender", default="sender@example.org", help="envelope sender")
    a.add_argument("-a", "--to", dest="recipient", default="recipient@example.org", help="envelope recipient")
    s.set_defaults(func=cmd_sieve)

    s = sub.add_parser("reload", help="re-read the configuration; sessions in progress finish (SIGHUP)")
    s.set_defaults(func=cmd_signal)
    s = sub.add_parser("log", help="the log file")
    sub_log = s.add_subparsers(dest="action", required=True)
    sub_log.add_parser("reopen", help="reopen the log file after logrotate moved it (SIGUSR1)")
    s.set_defaults(func=cmd_signal)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigErrors as exc:
        for error in exc.errors:
            print(f"pymailsrv: fatal: {error}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"pymailsrv: fatal: {exc}", file=sys.stderr)
        return 1
    except PymailsrvError as exc:
        print(f"pymailsrv: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file or directory a command needs (init's data directory, a Maildir)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"pymailsrv: fatal: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
