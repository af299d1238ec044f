"""The mail store seam: what IMAP, POP3 and the delivery agent see of the Maildirs (interfaces).

Folder names are Unicode strings as IMAP shows them after modified-UTF-7 decoding, with ``.`` as
the hierarchy separator (Maildir++ / Dovecot's default): ``INBOX``, ``Sent``, ``Archive.2024``.
The store maps them to ``.Sent``, ``.Archive.2024`` (names modified-UTF-7 encoded on disk, as
Dovecot does). ``INBOX`` is case-insensitive; other names are case-sensitive.

Message content is returned exactly as stored (Maildir files written by Postfix-style agents use
LF line endings); ``MessageInfo.size`` is always the RFC822 size with CRLF line endings, which is
what IMAP RFC822.SIZE and POP3 LIST report.

Implementation notes (invariants every implementation keeps):
- UIDs are strictly ascending within a folder and never reused; UIDVALIDITY changes only if the
  UID list is lost. A folder created under a name gets a UIDVALIDITY greater than any that name
  had before (RFC 3501 §2.3.1.1), and nothing of a folder that was deleted or renamed away
  (UIDs, UIDNEXT, cached pictures) carries over to a new folder of the same name.
- A Mailbox is bound to the folder it opened, not to its name: once that folder is deleted or
  renamed away (by any session or process) the Mailbox is dead and its calls raise MailboxGone.
- A change is announced on the change feed only after it is on disk (after the rename).
- A Mailbox object belongs to one session; its ``messages()`` view changes only in ``sync()``,
  so sequence numbers stay stable between syncs (RFC 3501 §7.4.1 is the session's job).
- Nothing here holds a lock while a caller writes to a socket.
- Every change to a message (flags, arrival, expunge) gets a modseq above every HIGHESTMODSEQ
  reported before it, whichever process made it, kept across restarts; expunged UIDs are
  remembered for VANISHED back to a floor (RFC 7162; the Maildir scheme is in store/folder.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pymailsrv.errors import PymailsrvError, Refusal
from pymailsrv.types import Account

SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
RECENT = "\\Recent"

FlagMode = Literal["set", "add", "remove"]


class FolderNotFound(Refusal):
    """No such folder (IMAP ``NO [NONEXISTENT]``)."""


class MailboxGone(FolderNotFound):
    """The folder a Mailbox opened was deleted or renamed away meanwhile; the Mailbox is dead
    (an IMAP session in the selected state must end: Dovecot's ``* BYE``)."""


class FolderExists(Refusal):
    """CREATE/RENAME onto an existing folder (IMAP ``NO [ALREADYEXISTS]``)."""


class InvalidFolderName(Refusal):
    """A name that would escape the Maildir: ``..``, absolute, NUL, control characters."""


class QuotaExceeded(Refusal):
    """Over quota (IMAP ``NO [OVERQUOTA]``, delivery 5.2.2 / 4.2.2)."""


class MailboxInUse(PymailsrvError):
    """An exclusive (POP3) lock is held by another session (POP3 ``-ERR [IN-USE]``)."""


@dataclass(frozen=True, slots=True)
class MessageInfo:
    uid: int
    flags: frozenset[str]  # system flags as "\\Seen" etc., keywords as given (no \\Recent)
    size: int  # RFC822 size with CRLF line endings
    internal_date: float  # epoch seconds (delivery time, or APPEND's date)
    modseq: int = 1


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What changed on disk since the previous ``sync()`` of this Mailbox object."""

    added: Sequence[MessageInfo] = ()
    expunged: Sequence[int] = ()  # UIDs gone, ascending
    flags_changed: Sequence[MessageInfo] = ()  # messages whose flags another writer changed
    recent: frozenset[int] = frozenset()  # UIDs this session is first to see (RFC 3501 \Recent)


@dataclass(frozen=True, slots=True)
class FolderInfo:
    name: str
    special_use: str | None = None  # "\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive"
    subscribed: bool = False
    has_children: bool = False
    selectable: bool = True


@dataclass(frozen=True, slots=True)
class FolderStatus:
    messages: int
    recent: int
    unseen: int
    uidnext: int
    uidvalidity: int
    size: int = 0
    highestmodseq: int = 1


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    bytes_used: int
    messages: int
    bytes_limit: int = 0  # 0 = unlimited
    messages_limit: int = 0

    def has_room(self, size: int = 0) -> bool:
        """May one more message of ``size`` bytes (0: not known yet) be stored? A mailbox at its
        limit is full even for a message of unknown size (the rule LMTP's RCPT and quota-status
        share; delivery itself checks the real size)."""
        if self.bytes_limit and self.bytes_used + max(size, 1) > self.bytes_limit:
            return False
        return not (self.messages_limit and self.messages + 1 > self.messages_limit)


@dataclass(frozen=True, slots=True)
class Delivered:
    """Result of MailStore.deliver: where the message went, for logs and dedup."""

    folder: str
    filename: str
    size: int
    extra: dict[str, str] = field(default_factory=dict)


class Mailbox(Protocol):
    """One folder opened by one session (SELECT/EXAMINE, a POP3 maildrop)."""

    folder: str
    uidvalidity: int
    readonly: bool

    @property
    def uidnext(self) -> int: ...

    @property
    def highestmodseq(self) -> int:
        """HIGHESTMODSEQ as of the view (RFC 7162 §3.1.2): every change made after it will have a
        greater modseq, whichever process makes it; kept across restarts."""
        ...

    def want_modseqs(self) -> None:
        """The session reports modseqs from now on (CONDSTORE): each sync also takes the modseqs
        other processes gave (otherwise seen with their next change to the directories)."""
        ...

    async def expunged_since(self, modseq: int) -> list[int] | None:
        """UIDs expunged after ``modseq`` (RFC 7162 VANISHED), ascending; may include UIDs still
        in the view (expunged since the last sync). None when the store no longer remembers that
        far back: the caller then names every UID it cannot see."""
        ...

    def messages(self) -> Sequence[MessageInfo]:
        """The session's current view, ascending by UID; changes only in ``sync()``."""
        ...

    async def sync(self) -> SyncResult:
        """Pick up what happened on disk (new deliveries, other sessions' flags and expunges),
        moving new/ to cur/ unless read-only. Updates ``messages()``. Raises MailboxGone (so do
        append, set_flags, expunge, copy and move) once the folder was deleted or renamed away."""
        ...

    async def read(self, uid: int) -> bytes:
        """The message as stored. Raises KeyError if the UID is not in the view or its file
        vanished (the caller answers NO / treats it as expunged)."""
        ...

    def path(self, uid: int) -> str:
        """The current file path of a message (for sendfile); may go stale after a sync."""
        ...

    async def append(self, data: bytes, flags: Iterable[str] = (), internal_date: float | None = None) -> int:
        """Store a new message in this folder; return its UID. Not visible in ``messages()``
        until the next ``sync()``. Raises QuotaExceeded."""
        ...

    async def set_flags(self, uids: Iterable[int], flags: Iterable[str], mode: FlagMode) -> list[MessageInfo]:
        """Change flags (renaming the files); returns the updated infos and updates the view."""
        ...

    async def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only those in ``uids`` when given); returns the
        removed UIDs ascending and drops them from the view."""
        ...

    async def copy(self, uids: Iterable[int], dest: str) -> tuple[int, list[tuple[int, int]]]:
        """Copy to folder ``dest`` keeping flags and internal dates; returns (dest uidvalidity,
        [(source uid, new uid)]). Raises FolderNotFound, QuotaExceeded."""
        ...

    async def move(self, uids: Iterable[int], dest: str) -> tuple[int, list[tuple[int, int]]]:
        """Copy then expunge the sources (a rename on the same filesystem)."""
        ...

    async def cache_get(self, uid: int, key: str) -> bytes | None:
        """Per-message cache (envelope, bodystructure …) kept in the folder index."""
        ...

    async def cache_put(self, uid: int, key: str, value: bytes) -> None: ...

    async def wait_for_change(self, timeout: float) -> bool:
        """Wait until something may have changed in this folder (another session's write, a
        delivery in this process, or a poll of the directory); True if woken by a change, and
        at once if the folder is gone (the next ``sync`` says so)."""
        ...

    async def close(self) -> None: ...


class MailStore(Protocol):
    async def open(self, account: Account, folder: str = "INBOX", *, readonly: bool = False) -> Mailbox:
        """Open a folder; raises FolderNotFound or InvalidFolderName."""
        ...

    async def list_folders(self, account: Account) -> list[FolderInfo]:
        """Every folder, INBOX first; creates the special-use folders on first use."""
        ...

    async def create_folder(self, account: Account, name: str) -> None: ...

    async def delete_folder(self, account: Account, name: str) -> None: ...

    async def rename_folder(self, account: Account, old: str, new: str) -> None:
        """Renames children too. Renaming INBOX moves its messages into the new folder and
        leaves INBOX empty (RFC 3501 §6.3.5)."""
        ...

    async def set_subscribed(self, account: Account, name: str, subscribed: bool) -> None: ...

    async def subscriptions(self, account: Account) -> list[str]:
        """Every subscribed name (in no particular order), including names that no longer exist
        (RFC 3501 §6.3.6: a subscription outlives its mailbox)."""
        ...

    async def status(self, account: Account, name: str) -> FolderStatus: ...

    async def quota(self, account: Account) -> QuotaUsage: ...

    async def deliver(self, account: Account, data: bytes, *, folder: str = "INBOX") -> Delivered:
        """The delivery agent's write: tmp → fsync → rename into new/ → fsync the directory,
        creating the Maildir (and parents) if missing, keeping maildirsize current. Returns only
        once durable. Raises QuotaExceeded when the mailbox is full."""
        ...

    def exclusive(self, account: Account) -> ExclusiveLock:
        """A per-mailbox lock for POP3 sessions: ``async with store.exclusive(acct):``;
        raises MailboxInUse if another holder has it."""
        ...


class ExclusiveLock(Protocol):
    async def __aenter__(self) -> None: ...

    async def __aexit__(self, *exc: object) -> None: ...
