"""Run a compiled Script on one message: the actions it asks for (RFC 5228 §2.10, §4).

Pure module: the world outside the message (which folders exist, what ``duplicate`` has seen,
the scripts ``include`` loads, the clock) comes through ``Context``.

Implementation notes:
- Bounded: at most ``max_actions`` actions and ``max_redirects`` redirects (a run that wants more
  fails), ``include`` at most ``MAX_INCLUDE_DEPTH`` deep, a step budget for commands and tests,
  variables cut at their size limit. Sieve has no loops, so this bounds time and memory.
- A run-time error drops every action and keeps the message (RFC 5228 §2.10.6), as Pigeonhole.
- A redirect to the envelope sender is not performed and does not cancel the implicit keep
  (issue 15: never to the sender).
- ``reject``/``ereject`` conflict with any action that delivers and with ``vacation`` (RFC 5429
  §2.1); a second vacation in one run is an error (RFC 5230 §4.7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from pymailsrv.sieve.actions import INBOX, Action, Notify, Result, Vacation, canonical_flags
from pymailsrv.sieve.compiler import Node, Script
from pymailsrv.sieve.errors import SieveRuntimeError
from pymailsrv.sieve.evaluate import evaluate, strs, text
from pymailsrv.sieve.match import match_any
from pymailsrv.sieve.message import Envelope, SieveMessage, decode_header
from pymailsrv.sieve.notify import valid_method
from pymailsrv.sieve.variables import Scope, apply_modifiers

MAX_INCLUDE_DEPTH = 10  # Pigeonhole's sieve_include_max_nesting_depth
MAX_STEPS = 100_000
DAY = 86400


def _no(_: str) -> bool:
    return False


def _no_script(_location: str, _name: str) -> Script | None:
    return None


@dataclass(slots=True)
class Context:
    """What a run may know about the world. Defaults suit a script run in isolation."""

    envelope: Envelope
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    zone: tzinfo = UTC  # the "local" zone of date/currentdate (RFC 5260 §4.1)
    delimiter: str = "+"  # recipient_delimiter for :user/:detail (RFC 5233)
    mailbox_exists: Callable[[str], bool] = _no
    duplicate_seen: Callable[[str], bool] = _no
    include: Callable[[str, str], Script | None] = _no_script
    max_actions: int = 32  # sieve_max_actions
    max_redirects: int = 4  # sieve_max_redirects
    vacation_period: tuple[int, int, int] = (DAY, 7 * DAY, 60 * DAY)  # min, default, max
    duplicate_period: tuple[int, int] = (12 * 3600, 2 * DAY)  # default, max


class _Stop(Exception):
    pass


class _Return(Exception):
    pass


class Run:
    """The state of one run over one message (shared by the scripts it includes)."""

    def __init__(self, msg: SieveMessage, ctx: Context) -> None:
        self.msg = msg
        self.ctx = ctx
        self.shared: dict[str, str] = {}
        self.scope = Scope(self.shared)
        self.variables = False
        self.actions: list[Action] = []
        self.keep_cancelled = False
        self.flags: list[str] = []  # the internal flags variable (RFC 5232 §3)
        self.duplicates: list[tuple[str, int, bool]] = []
        self.included: set[tuple[str, str]] = set()
        self.depth = 0
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise SieveRuntimeError("script took too many steps")

    def expand(self, s: str) -> str:
        return self.scope.expand(s) if self.variables else s

    def flags_of(self, variable: str) -> list[str]:
        if not variable:
            return list(self.flags)
        return list(canonical_flags([self.scope.get(variable)]))

    # -- running -----------------------------------------------------------------------------
    def run_script(self, script: Script) -> None:
        saved = (self.scope, self.variables)
        self.scope = Scope(self.shared)
        self.variables = "variables" in script.requires
        try:
            self.block(script.commands)
        except _Return:
            pass
        finally:
            self.scope, self.variables = saved

    def block(self, commands: list[Node]) -> None:
        taken = False  # an if/elsif of this chain ran its block
        for node in commands:
            self.step()
            name = node.name
            if name == "if":
                taken = evaluate(self, node.tests[0])
                if taken:
                    self.block(node.block or [])
            elif name == "elsif":
                if not taken:
                    taken = evaluate(self, node.tests[0])
                    if taken:
                        self.block(node.block or [])
            elif name == "else":
                if not taken:
                    self.block(node.block or [])
                taken = True
            else:
                COMMANDS[name](self, node)

    # -- actions -----------------------------------------------------------------------------
    def add(self, action: Action) -> None:
        if len(self.actions) >= self.ctx.max_actions:
            raise SieveRuntimeError("too many actions", action.line)
        if action.kind in ("reject", "ereject"):
            if any(a.kind in ("reject", "ereject") for a in self.actions):
                raise SieveRuntimeError("duplicate reject/ereject action", action.line)
            if any(a.stores or a.kind in ("redirect", "vacation") for a in self.actions):
                raise SieveRuntimeError("reject conflicts with an earlier action that delivers", action.line)
        elif (action.stores or action.kind in ("redirect", "vacation")) and any(
                a.kind in ("reject", "ereject") for a in self.actions):
            raise SieveRuntimeError(f"{action.kind} conflicts with reject", action.line)
        if action.kind == "vacation" and any(a.kind == "vacation" for a in self.actions):
            raise SieveRuntimeError("duplicate vacation action", action.line)
        if action.stores:
            for a in self.actions:  # one store per folder; the flags of each request add up
                if a.stores and a.target == action.target:
                    a.flags = canonical_flags([*a.flags, *action.flags])
                    a.fields = action.fields
                    return
        if action.kind in ("redirect", "discard") and any(
                a.kind == action.kind and same_address(a.target, action.target) for a in self.actions):
            return
        self.actions.append(action)


def same_address(a: str, b: str) -> bool:
    """The local part is case-sensitive (RFC 5321 §2.4), the domain is not."""
    la, _, da = a.rpartition("@")
    lb, _, db = b.rpartition("@")
    return la == lb and da.lower() == db.lower()


def _store_flags(run: Run, node: Node) -> tuple[str, ...]:
    if "flags" in node.tags:
        return canonical_flags(strs(run, node.tags["flags"]))
    return tuple(run.flags)


def cmd_keep(run: Run, node: Node) -> None:
    run.add(Action("keep", INBOX, _store_flags(run, node), fields=run.msg.fields, line=node.line))
    run.keep_cancelled = True


def cmd_discard(run: Run, node: Node) -> None:
    run.add(Action("discard", line=node.line))
    run.keep_cancelled = True


def cmd_fileinto(run: Run, node: Node) -> None:
    folder = text(run, node.args[0])
    if folder.upper() == INBOX:
        folder = INBOX
    run.add(Action("fileinto", folder, _store_flags(run, node), copy=bool(node.tags.get("copy")),
                   create=bool(node.tags.get("create")), fields=run.msg.fields, line=node.line))
    if not node.tags.get("copy"):
        run.keep_cancelled = True


def cmd_redirect(run: Run, node: Node) -> None:
    address = text(run, node.args[0]).strip().strip("<>")
    if "@" not in address or any(c.isspace() for c in address):
        raise SieveRuntimeError(f"redirect: invalid address '{address}'", node.line)
    if address.lower() == run.ctx.envelope.sender.lower():
        return  # never back to the sender
    if sum(a.kind == "redirect" for a in run.actions) >= run.ctx.max_redirects:
        raise SieveRuntimeError("too many redirect actions", node.line)
    run.add(Action("redirect", address, copy=bool(node.tags.get("copy")), fields=run.msg.fields, line=node.line))
    if not node.tags.get("copy"):
        run.keep_cancelled = True


def cmd_reject(run: Run, node: Node) -> None:
    run.add(Action("ereject" if node.name == "ereject" else "reject", reason=text(run, node.args[0]),
                   line=node.line))
    run.keep_cancelled = True


def cmd_vacation(run: Run, node: Node) -> None:
    low, default, high = run.ctx.vacation_period
    if "seconds" in node.tags:
        seconds = int(node.tags["seconds"])  # type: ignore[arg-type]
    elif "days" in node.tags:
        seconds = int(node.tags["days"]) * DAY  # type: ignore[arg-type]
    else:
        seconds = default
    seconds = max(low, min(high, seconds)) if seconds or low else 0
    reason = text(run, node.args[0])
    subject = text(run, node.tags.get("subject"))
    from_ = text(run, node.tags.get("from"))
    mime = bool(node.tags.get("mime"))
    handle = text(run, node.tags["handle"]) if "handle" in node.tags else (
        # Pigeonhole's default handle: the arguments that make one reply differ from another
        reason + subject + (from_ or "<default-from>") + ("<MIME>" if mime else "<NO-MIME>"))
    vac = Vacation(reason, seconds, subject, from_, tuple(strs(run, node.tags.get("addresses"))), mime, handle)
    run.add(Action("vacation", vacation=vac, line=node.line))


def cmd_notify(run: Run, node: Node) -> None:
    method = text(run, node.args[0])
    if not valid_method(method):
        raise SieveRuntimeError(f"notify: invalid method '{method}'", node.line)
    importance = text(run, node.tags.get("importance")) or "2"
    if importance not in ("1", "2", "3"):
        raise SieveRuntimeError(f"notify: invalid importance '{importance}'", node.line)
    n = Notify(method, text(run, node.tags.get("from")), int(importance),
               tuple(strs(run, node.tags.get("options"))), text(run, node.tags.get("message")))
    run.add(Action("notify", method, notify=n, line=node.line))


def cmd_flags(run: Run, node: Node) -> None:
    """setflag / addflag / removeflag, on the internal variable or a named one (RFC 5232 §4)."""
    given = canonical_flags(strs(run, node.args[1]))
    var = text(run, node.args[0]) if node.args[0] is not None else ""
    current = run.flags_of(var)
    if node.name == "setflag":
        new = list(given)
    elif node.name == "addflag":
        new = list(canonical_flags([*current, *given]))
    else:
        drop = {f.lower() for f in given}
        new = [f for f in current if f.lower() not in drop]
    if var:
        run.scope.set(var, " ".join(new))
    else:
        run.flags = new


def cmd_set(run: Run, node: Node) -> None:
    mods = [m for m in ("lower", "upper", "lowerfirst", "upperfirst", "quotewildcard", "length", "encodeurl")
            if node.tags.get(m)]
    run.scope.set(str(node.args[0]), apply_modifiers(text(run, node.args[1]), mods))


def cmd_include(run: Run, node: Node) -> None:
    location = str(node.tags.get("location", "personal"))
    name = text(run, node.args[0])
    key = (location, name)
    if node.tags.get("once") and key in run.included:
        return
    if run.depth >= MAX_INCLUDE_DEPTH:
        raise SieveRuntimeError("include nested too deeply", node.line)
    script = run.ctx.include(location, name)
    if script is None:
        if node.tags.get("optional"):
            return
        raise SieveRuntimeError(f"include: script '{name}' not found", node.line)
    run.included.add(key)
    run.depth += 1
    try:
        run.run_script(script)
    finally:
        run.depth -= 1


def cmd_return(run: Run, node: Node) -> None:
    raise _Return


def cmd_global(run: Run, node: Node) -> None:
    for name in strs(run, node.args[0]):
        run.scope.globals.add(name.lower())


PROTECTED_FIELDS = ("received", "auto-submitted")  # RFC 5293 §6 / Pigeonhole's default


def cmd_addheader(run: Run, node: Node) -> None:
    name, value = text(run, node.args[0]), text(run, node.args[1])
    if name.lower() in PROTECTED_FIELDS:
        return
    value = value.replace("\r\n", "\n").replace("\n", "\n ")  # keep it one folded field
    run.msg.add_field(name, value, bool(node.tags.get("last")))


def cmd_deleteheader(run: Run, node: Node) -> None:
    name = text(run, node.args[0]).lower()
    if name in PROTECTED_FIELDS:
        return
    positions = [i for i, (k, _) in enumerate(run.msg.fields) if k.lower() == name]
    if "index" in node.tags:
        idx = int(node.tags["index"])  # type: ignore[arg-type]
        if idx > len(positions):
            return
        positions = [positions[-idx] if node.tags.get("last") else positions[idx - 1]]
    if node.args[1] is not None:
        keys = strs(run, node.args[1])
        match = str(node.tags.get("match", "is"))
        comparator = str(node.tags.get("comparator", "i;ascii-casemap"))
        rel = str(node.tags.get(match, "")) if match in ("count", "value") else ""
        positions = [i for i in positions
                     if match_any([decode_header(run.msg.fields[i][1])], keys, match, comparator, rel)[0]]
    drop = set(positions)
    run.msg.delete_fields([f for i, f in enumerate(run.msg.fields) if i not in drop])


def cmd_stop(run: Run, node: Node) -> None:
    raise _Stop


COMMANDS: dict[str, Callable[[Run, Node], None]] = {
    "keep": cmd_keep, "discard": cmd_discard, "fileinto": cmd_fileinto, "redirect": cmd_redirect,
    "reject": cmd_reject, "ereject": cmd_reject, "vacation": cmd_vacation, "notify": cmd_notify,
    "setflag": cmd_flags, "addflag": cmd_flags, "removeflag": cmd_flags, "set": cmd_set,
    "include": cmd_include, "return": cmd_return, "global": cmd_global, "addheader": cmd_addheader,
    "deleteheader": cmd_deleteheader, "stop": cmd_stop,
}


def run_scripts(scripts: list[Script], msg: SieveMessage, ctx: Context) -> Result:
    """Run scripts one after the other on one message (``sieve_before``, the user's script,
    ``sieve_after``): a ``stop`` ends them all, as Pigeonhole's sequence does. A script that
    fails loses its own actions and ends the sequence; what the scripts before it decided
    stands (the admin's Junk rule survives a broken user script), else the implicit keep keeps
    the message (RFC 5228 §2.10.6)."""
    run = Run(msg, ctx)
    error: str | None = None
    try:
        for script in scripts:
            mark, cancelled, flags = len(run.actions), run.keep_cancelled, list(run.flags)
            try:
                run.run_script(script)
            except (SieveRuntimeError, RecursionError) as exc:
                error = str(exc) if isinstance(exc, SieveRuntimeError) else "script nested too deeply"
                del run.actions[mark:]  # as if the failed script had not run
                run.keep_cancelled, run.flags = cancelled, flags
                break
    except _Stop:
        pass
    actions = list(run.actions)
    if not run.keep_cancelled:
        implicit = Action("keep", INBOX, tuple(run.flags), implicit=True, fields=msg.fields)
        if not any(a.stores and a.target == INBOX for a in actions):
            actions.append(implicit)
    return Result(actions, error, [] if error else run.duplicates)


def run_script(script: Script, msg: SieveMessage, ctx: Context) -> Result:
    return run_scripts([script], msg, ctx)
