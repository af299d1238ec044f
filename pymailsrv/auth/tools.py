"""``pymailsrv pw hash|verify`` (like ``doveadm pw``) and ``pymailsrv auth test`` (like
``doveadm auth test``). Called from pymailsrv/cli.py; output goes to stdout, errors to stderr.

Exit codes: 0 success; 1 wrong password, unknown scheme or bad input; 75 (EX_TEMPFAIL, as
doveadm) when the database cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from pymailsrv.auth import pacrypt
from pymailsrv.auth.authenticator import DirectoryAuthenticator
from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.auth.schemes import (
    SCHEMES,
    InvalidRounds,
    UnknownScheme,
    hash_password,
    identify,
    split_scheme,
    verify_password,
)
from pymailsrv.auth.throttle import Throttle
from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.base import Directory

EX_TEMPFAIL = 75


def _err(text: str) -> int:
    print(f"pymailsrv: {text}", file=sys.stderr)
    return 1


def _hash(settings: Settings, args: argparse.Namespace, password: str) -> str:
    """``--scheme``: as ``doveadm pw -s`` writes it; else as PostfixAdmin with ``--encrypt`` or
    ``postfixadmin_encrypt`` stores it. Raises ValueError (unknown scheme or value, bad rounds)."""
    rounds = getattr(args, "rounds", 0) or 0
    if getattr(args, "scheme", None):
        return hash_password(password, args.scheme, rounds=rounds)
    encrypt = pacrypt.parse(args.encrypt) if getattr(args, "encrypt", None) else pacrypt.from_settings(settings)
    return encrypt.hash(password, rounds=rounds)


def cli_pw(settings: Settings, args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """``args.password`` is the password (pymailsrv/cli.py reads it)."""
    out = out or sys.stdout
    if args.action == "hash":
        if not args.password:
            return _err("fatal: Empty passwords are not allowed")
        try:
            print(_hash(settings, args, args.password), file=out)
        except (UnknownScheme, InvalidRounds, pacrypt.UnknownEncrypt) as exc:
            return _err(f"fatal: {exc}")
        return 0
    if args.action == "list":
        print(" ".join(SCHEMES), file=out)
        return 0
    if args.action == "verify":
        password = args.password
        default = pacrypt.unprefixed_scheme(settings)
        if identify(args.hash, default) is None:
            return _err(f"fatal: Unknown scheme: {split_scheme(args.hash)[0] or default}")
        if verify_password(password, args.hash, default):
            print(f"{args.hash} (verified)", file=out)
            return 0
        return _err("fatal: reverse password verification check failed: Password mismatch")
    return _err(f"unknown pw action {args.action!r}")


async def auth_test(directory: Directory, settings: Settings, address: str, password: str, *,
                    out: TextIO) -> int:
    """One login through the real Authenticator; prints what ``doveadm auth test`` prints."""
    clock = SystemClock()
    # no failure delay for an admin's one-off check
    authenticator = DirectoryAuthenticator(directory, settings, clock, throttle=Throttle(clock, delay=0.0))
    try:
        account = await authenticator.authenticate(address, password, service="cli", remote_ip="local")
    except AuthUnavailable as exc:
        detail = f" ({exc.__cause__})" if exc.__cause__ is not None else ""  # an admin's view: say why
        print(f"passdb: {address} auth temporarily failed: {exc}{detail}", file=out)
        return EX_TEMPFAIL
    if account is None:
        print(f"passdb: {address} auth failed", file=out)
        print("extra fields:", file=out)
        print(f"  user={address.strip().lower()}", file=out)
        return 1
    print(f"passdb: {address} auth succeeded", file=out)
    print("extra fields:", file=out)
    print(f"  user={account.username}", file=out)
    return 0


def _open_directory(settings: Settings) -> Directory:
    # The SQL Directory (engine from database_url), imported lazily: only this CLI command needs
    # a concrete Directory here; the servers get theirs from app.py.
    from pymailsrv.db.directory import SqlDirectory

    return SqlDirectory.from_settings(settings)


async def cli_auth(settings: Settings, args: argparse.Namespace, *, out: TextIO | None = None,
                   directory: Directory | None = None) -> int:
    out = out or sys.stdout
    if args.action != "test":
        return _err(f"unknown auth action {args.action!r}")
    password = args.password
    own = directory is None
    if directory is None:
        directory = _open_directory(settings)
    try:
        return await auth_test(directory, settings, args.address, password, out=out)
    finally:
        if own:
            await directory.close()
