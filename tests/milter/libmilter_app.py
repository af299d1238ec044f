"""A test milter on Sendmail's own libmilter (Debian's python3-milter, pymilter): the reference
implementation of the milter side, so our MTA side is checked against an independent peer.

Run by the tests as ``python3 libmilter_app.py SOCKET NAME`` under an interpreter that has the
``Milter`` module. What it does is chosen by the message, so one process serves every test:

- sender ``reject-mail@…``: a multi-line 550 reply at MAIL FROM; ``tempfail-mail@…``: a tempfail
- recipient ``reject-rcpt@…``: 550 5.7.1 for that recipient; ``discard-rcpt@…``: discard
- ``Subject:`` words at the end of the message: ``add`` (add + insert headers), ``change``,
  ``delete``, ``body``, ``from``, ``addrcpt``, ``delrcpt``, ``quarantine``, ``reject``,
  ``tempfail``, ``discard``, ``progress`` (slow, with progress replies), ``sleep`` (slow,
  silent), ``macros`` (reports the macros it got), ``chain`` (reports the headers it saw),
  ``skip`` (SMFIS_SKIP in the body).
Every message gets ``X-NAME-Body-Bytes:`` with the size of the body the milter received.
"""

from __future__ import annotations

import sys
import time

import Milter

MACROS = ("j", "{daemon_name}", "v", "_", "{client_addr}", "{client_name}", "i", "{auth_authen}",
          "{auth_type}", "{mail_addr}", "{rcpt_addr}", "{tls_version}")


class TestMilter(Milter.Base):
    name = "test"

    def __init__(self) -> None:
        self.reset()
        self.seen_macros: dict[str, str] = {}

    def reset(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.received = b""
        self.body_calls = 0
        self.rcpts: list[str] = []
        self.sender = ""

    def _macros(self) -> None:
        for name in MACROS:
            value = self.getsymval(name)
            if value is not None:
                self.seen_macros[name] = value

    def connect(self, hostname, family, hostaddr):  # type: ignore[no-untyped-def]
        self._macros()
        self.seen_macros["connect"] = f"{hostname} {hostaddr[0] if hostaddr else ''}"
        return Milter.CONTINUE

    def hello(self, heloname):  # type: ignore[no-untyped-def]
        self._macros()
        self.seen_macros["helo"] = heloname
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *args):  # type: ignore[no-untyped-def]
        self.reset()
        self._macros()
        self.sender = mailfrom
        self.seen_macros["mail_args"] = " ".join(args)
        if mailfrom.startswith("<reject-mail@"):
            self.setreply("550", "5.7.1", "Sender refused by libmilter", "second line")
            return Milter.REJECT
        if mailfrom.startswith("<tempfail-mail@"):
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envrcpt(self, to, *args):  # type: ignore[no-untyped-def]
        self._macros()
        if to.startswith("<reject-rcpt@"):
            self.setreply("550", "5.7.1", "Recipient refused by libmilter")
            return Milter.REJECT
        if to.startswith("<discard-rcpt@"):
            return Milter.DISCARD
        self.rcpts.append(to)
        return Milter.CONTINUE

    def data(self):  # type: ignore[no-untyped-def]
        return Milter.CONTINUE

    def header(self, name, value):  # type: ignore[no-untyped-def]
        self.headers.append((name, value))
        return Milter.CONTINUE

    def negotiate(self, opts):  # type: ignore[no-untyped-def]
        result = super().negotiate(opts)
        # ask for macros at the end of the header (SMFIR_SETSYMLIST in the negotiation reply);
        # not @Milter.symlist: python3-milter 1.0.5 hands its C part bytes where it wants str
        self._ctx.setsymlist(Milter.MACRO_CALLBACKS["eoh"], "{client_addr} i")
        return result

    def eoh(self):  # type: ignore[no-untyped-def]
        self._macros()
        return Milter.CONTINUE

    def body(self, chunk):  # type: ignore[no-untyped-def]
        self.received += chunk
        self.body_calls += 1
        if "skip" in self.subject():
            return Milter.SKIP
        return Milter.CONTINUE

    def subject(self) -> str:
        return next((v for n, v in self.headers if n.lower() == "subject"), "").lower()

    def eom(self):  # type: ignore[no-untyped-def]
        self._macros()
        words = self.subject().split()
        self.addheader(f"X-{self.name}-Body-Bytes", str(len(self.received)))
        if "skip" in words:
            self.addheader(f"X-{self.name}-Body-Calls", str(self.body_calls))
        if "reject" in words:
            self.setreply("554", "5.7.1", "Message refused by libmilter")
            return Milter.REJECT
        if "tempfail" in words:
            return Milter.TEMPFAIL
        if "discard" in words:
            return Milter.DISCARD
        if "sleep" in words:  # longer than the test's content timeout, without a word
            print("sleeping at end of message", flush=True)  # the test waits for this line
            time.sleep(6)
        if "progress" in words:
            for _ in range(4):  # 3.2s in all, more than the test's content timeout, each wait less
                time.sleep(0.8)
                self.progress()
        if "add" in words:
            self.addheader("X-Added", "appended by libmilter")
            self.addheader("X-Inserted", "at the top", 0)
            self.addheader("X-Folded", "first line\n\tsecond line")
        if "change" in words:
            self.chgheader("Subject", 1, "changed by libmilter")
            self.chgheader("X-Second", 2, "second one changed")
        if "delete" in words:
            self.chgheader("X-Delete-Me", 1, "")
        if "body" in words:
            self.replacebody(b"The body was replaced.\r\nSecond line.\r\n")
        if "from" in words:
            self.chgfrom("<changed-sender@example.org>")
        if "addrcpt" in words:
            self.addrcpt("<bob@example.com>")
        if "delrcpt" in words:
            self.delrcpt("<alice@example.com>")
        if "quarantine" in words:
            self.quarantine("suspicious, says libmilter")
        if "macros" in words:
            for key, value in sorted(self.seen_macros.items()):
                self.addheader("X-Macro", f"{key}={value}")
        if "chain" in words:
            self.addheader(f"X-{self.name}-Saw", ",".join(n for n, _ in self.headers))
        return Milter.CONTINUE

    def abort(self):  # type: ignore[no-untyped-def]
        return Milter.CONTINUE

    def close(self):  # type: ignore[no-untyped-def]
        return Milter.CONTINUE


def main() -> None:
    socket, name = sys.argv[1], sys.argv[2]
    TestMilter.name = name

    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT | Milter.DELRCPT
                     | Milter.QUARANTINE | Milter.CHGFROM | Milter.SETSYMLIST)
    sys.stdout.write("starting\n")
    sys.stdout.flush()
    Milter.runmilter(name, socket, 60)


if __name__ == "__main__":
    main()
