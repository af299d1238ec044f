"""Run a script through Pigeonhole's ``sieve-test`` (Debian dovecot-sieve) and through ours, and
describe the actions of each in one normalized form (``pymailsrv.sieve.actions.describe``).

``sieve-test`` runs with its own configuration in a temp directory (no system Dovecot config),
as an unprivileged user when the test runs as root, in UTC, with nothing executed (it only lists
the actions it would take).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pymailsrv.sieve import SieveError, compile_script
from pymailsrv.sieve.interpreter import Context, run_script
from pymailsrv.sieve.message import Envelope, SieveMessage

SIEVE_TEST = shutil.which("sieve-test")

CONFIG = """\
protocols =
mail_uid = {uid}
mail_gid = {gid}
ssl = no
base_dir = {base}/run
log_path = /dev/stderr
plugin {{
  sieve_extensions = +vacation-seconds +editheader
  sieve_vacation_min_period = 1d
  sieve_vacation_default_period = 7d
  sieve_vacation_max_period = 60d
  sieve_max_redirects = 4
  sieve_max_actions = 32
  sieve_duplicate_default_period = 12h
  sieve_global = {base}/global
  sieve = file:{base}/sieve;active={base}/.dovecot.sieve
}}
"""


def ours(script: str, message: bytes, sender: str, recipient: str, mailboxes: tuple[str, ...] = (),
         includes: dict[str, str] | None = None) -> list[str]:
    includes = includes or {}
    try:
        compiled = compile_script(script)
        loaded = {k: compile_script(v, name=k) for k, v in includes.items()}
    except SieveError:
        return ["compile-error"]
    msg = SieveMessage.parse(message.replace(b"\r\n", b"\n"))
    ctx = Context(Envelope(sender, recipient), now=datetime.now(UTC),
                  mailbox_exists=lambda n: n in ("INBOX", *mailboxes),
                  include=lambda loc, name: loaded.get(f"{loc}/{name}"))
    result = run_script(compiled, msg, ctx)
    if result.error is not None:
        return ["error"]
    return result.describe()


def _owner(base: Path) -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    import pwd

    nobody = pwd.getpwnam("nobody")
    os.chown(base, nobody.pw_uid, nobody.pw_gid)
    for p in base.rglob("*"):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    return nobody.pw_uid, nobody.pw_gid


def pigeonhole(script: str, message: bytes, sender: str, recipient: str, mailboxes: tuple[str, ...] = (),
               includes: dict[str, str] | None = None) -> list[str]:
    """The actions sieve-test lists, normalized; ["compile-error"] when it does not compile."""
    assert SIEVE_TEST is not None
    with tempfile.TemporaryDirectory(prefix="sieve-test-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # sieve-test runs as nobody when we are root
        (base / "sieve").mkdir()
        (base / "global").mkdir()
        for key, text in (includes or {}).items():
            location, name = key.split("/", 1)
            where = base / ("global" if location == "global" else "sieve")
            (where / f"{name}.sieve").write_text(text)
        return _pigeonhole(script, message, sender, recipient, base, mailboxes)


def _pigeonhole(script: str, message: bytes, sender: str, recipient: str, base: Path,
                mailboxes: tuple[str, ...]) -> list[str]:
    (base / "t.sieve").write_text(script)
    (base / "m.eml").write_bytes(message)
    for box in mailboxes:
        for sub in ("cur", "new", "tmp"):
            (base / "md" / f".{box}" / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("cur", "new", "tmp"):
        (base / "md" / sub).mkdir(parents=True, exist_ok=True)
    uid, gid = _owner(base)
    (base / "dovecot.conf").write_text(CONFIG.format(uid=uid, gid=gid, base=base))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC", "HOME": str(base)}
    proc = subprocess.run(
        [SIEVE_TEST, "-c", str(base / "dovecot.conf"), "-l", f"maildir:{base}/md", "-f", sender or "<>",
         "-a", recipient, "-r", recipient, str(base / "t.sieve"), str(base / "m.eml")],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    return parse_output(proc.stdout + proc.stderr)


def parse_output(out: str) -> list[str]:
    if "failed to compile sieve script" in out:
        return ["compile-error"]
    actions: list[str] = []
    current: dict[str, str] | None = None
    lines = out.splitlines()
    in_message = False

    def flush() -> None:
        nonlocal current
        if current is None:
            return
        kind = current["kind"]
        if kind == "store":
            flags = " ".join(sorted(current.get("flags", "").lower().split()))
            actions.append(f"store {current['target']}" + (f" flags: {flags}" if flags else ""))
        elif kind == "vacation":
            out = f"vacation seconds={current.get('seconds', '')}"
            if current.get("subject"):
                out += f" subject={current['subject']}"
            if current.get("from"):
                out += f" from={current['from']}"
            actions.append(out)
        elif kind == "notify":
            actions.append(f"notify mailto:{current.get('to', '')} importance={current.get('importance', '2')}")
        else:
            actions.append(current["text"])
        current = None

    for line in lines:
        if line == "START MESSAGE":
            in_message = True
            continue
        if line == "END MESSAGE":
            in_message = False
            continue
        if in_message:
            continue
        s = line.strip()
        if s.startswith("* "):
            flush()
            body = s[2:]
            if body.startswith("store message in folder: "):
                current = {"kind": "store", "target": body.split(": ", 1)[1]}
            elif body.startswith("redirect message to: "):
                current = {"kind": "other", "text": "redirect " + body.split(": ", 1)[1].strip("<>")}
            elif body.startswith("reject message with reason: "):
                # sieve-test shows a line break of the reason as "??"
                reason = body.split(": ", 1)[1].replace("??", "\n").strip()
                current = {"kind": "other", "text": "reject " + reason}
            elif body.startswith("send vacation message"):
                current = {"kind": "vacation"}
            elif body.startswith("send notification"):
                current = {"kind": "notify"}
            else:
                current = {"kind": "other", "text": body}
        elif current is not None and s.startswith("+ add IMAP flags: "):
            current["flags"] = current.get("flags", "") + " " + s.split(": ", 1)[1]
        elif current is not None and s.startswith("=> "):
            key, _, value = s[3:].partition(":")
            current[key.strip()] = value.strip()
        elif current is not None and s.startswith("+ To: "):
            current["to"] = ",".join(filter(None, [current.get("to", ""), s[6:].strip()]))
    flush()
    if re.search(r"final result: failed", out):
        return ["error"]
    return [a for a in actions if not a.startswith("track ")]  # "track [last ]duplicate": no action
