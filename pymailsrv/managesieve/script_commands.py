"""Commands on the user's scripts (RFC 5804 §2.3-§2.12): HAVESPACE, PUTSCRIPT, CHECKSCRIPT,
LISTSCRIPTS, SETACTIVE, GETSCRIPT, DELETESCRIPT, RENAMESCRIPT. The files are ``store.sievedir``'s
(Dovecot's layout), touched in a thread."""

from __future__ import annotations

import asyncio

from pymailsrv.errors import ClientSyntaxError
from pymailsrv.managesieve import replies
from pymailsrv.managesieve.auth_commands import arity, text_arg
from pymailsrv.managesieve.parser import Request
from pymailsrv.managesieve.session import Session, log
from pymailsrv.store.sievedir import ScriptError, SieveDir, check_name


def _dir(s: Session) -> SieveDir:
    assert s.scripts is not None
    return s.scripts


def _name(value: object) -> str:
    return check_name(text_arg(value))


def _script(s: Session, value: object) -> str:
    """The script text, checked by the Sieve implementation (RFC 5804 §2.6: syntax errors are NO)."""
    text = text_arg(value)
    error = s.services.check(text)
    if error is not None:
        raise ScriptError(error)
    return text


async def cmd_havespace(s: Session, req: Request) -> None:
    arity(req, 2)
    name, size = _name(req.args[0]), req.args[1]
    if not isinstance(size, int):
        raise ClientSyntaxError(replies.BAD_ARGUMENTS)
    await asyncio.to_thread(_dir(s).check_space, name, size)
    s.send(replies.ok(replies.SPACE_OK))


async def cmd_putscript(s: Session, req: Request) -> None:
    arity(req, 2)
    name = _name(req.args[0])
    text = _script(s, req.args[1])
    data = text.encode("utf-8")
    await asyncio.to_thread(_dir(s).put, name, data)
    log.info("%s: script %s stored (%d bytes)", s.username, name, len(data))
    s.send(replies.ok(replies.PUT_OK))


async def cmd_checkscript(s: Session, req: Request) -> None:
    arity(req, 1)
    _script(s, req.args[0])
    s.send(replies.ok(replies.CHECK_OK))


async def cmd_listscripts(s: Session, req: Request) -> None:
    arity(req, 0)
    for name, active in await asyncio.to_thread(_dir(s).list):
        s.send(replies.string(name) + (b" ACTIVE" if active else b"") + b"\r\n")
    s.send(replies.ok(replies.LIST_OK))


async def cmd_setactive(s: Session, req: Request) -> None:
    arity(req, 1)
    raw = text_arg(req.args[0])
    name = check_name(raw) if raw else ""
    await asyncio.to_thread(_dir(s).set_active, name)
    log.info("%s: %s", s.username, f"script {name} activated" if name else "no script active")
    s.send(replies.ok(replies.ACTIVE_OK))


async def cmd_getscript(s: Session, req: Request) -> None:
    arity(req, 1)
    data = await asyncio.to_thread(_dir(s).get, _name(req.args[0]))
    s.send(b"{%d}\r\n" % len(data) + data + b"\r\n")  # RFC 5804 §2.9: always a literal
    s.send(replies.ok(replies.GET_OK))


async def cmd_deletescript(s: Session, req: Request) -> None:
    arity(req, 1)
    name = _name(req.args[0])
    await asyncio.to_thread(_dir(s).delete, name)
    log.info("%s: script %s deleted", s.username, name)
    s.send(replies.ok(replies.DELETE_OK))


async def cmd_renamescript(s: Session, req: Request) -> None:
    arity(req, 2)
    old, new = _name(req.args[0]), _name(req.args[1])
    await asyncio.to_thread(_dir(s).rename, old, new)
    s.send(replies.ok(replies.RENAME_OK))


def capa_sieve(s: Session) -> tuple[str, str] | None:
    return ("SIEVE", " ".join(s.services.extensions))


def capa_notify(s: Session) -> tuple[str, str] | None:
    """RFC 5804 §1.7: NOTIFY lists the enotify methods, when the Sieve implementation has enotify."""
    return ("NOTIFY", "mailto") if "enotify" in s.services.extensions else None

