"""The error taxonomy shared by every protocol (STYLE.md rule 3).

Three kinds of failure reach a client, each mapped to the wire once, at the top of a command loop:

* ``ClientSyntaxError``: the client sent something malformed (IMAP ``BAD``, SMTP 500/501, POP3 ``-ERR``).
* ``Refusal``: a well-formed request that a user or policy decision refuses; it carries the reply.
* anything else: a server fault; the client gets a fixed text, the traceback goes to the log only.
"""

from __future__ import annotations


class PymailsrvError(Exception):
    """Base class of every error pymailsrv raises on purpose."""


class ConfigError(PymailsrvError):
    """A configuration problem, reported as one line with ``file:line`` when known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class ConfigErrors(ConfigError):
    """Several configuration problems found in one pass; ``str()`` lists each on its own line."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class ClientSyntaxError(PymailsrvError):
    """The client's input does not parse; ``text`` is safe to send to the client."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(text)


class Refusal(PymailsrvError):
    """A deliberate refusal; ``code`` and ``text`` are protocol-neutral and safe to send.

    ``temporary`` distinguishes a try-again-later answer (SMTP 4xx, IMAP ``NO [UNAVAILABLE]``)
    from a permanent one.
    """

    def __init__(self, text: str, *, code: str = "", temporary: bool = False) -> None:
        self.text = text
        self.code = code
        self.temporary = temporary
        super().__init__(text)


class TemporaryFailure(PymailsrvError):
    """A dependency (database, DNS, disk) failed in a way that may heal; callers answer 4xx/NO."""


class NotFound(PymailsrvError):
    """A named object (domain, mailbox, alias, queue file, folder) does not exist."""


class AlreadyExists(PymailsrvError):
    """A named object that must be new already exists."""
