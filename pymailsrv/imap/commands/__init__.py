"""The one IMAP command table (STYLE.md rule 2): ``COMMANDS[name] = Spec(states, handler, caps)``.

State gating, unknown commands and the error budget live in ``ImapServer.dispatch``; CAPABILITY
is derived from the ``caps`` of this table (``ImapServer.capabilities``).
"""

from __future__ import annotations

from pymailsrv.imap.commands import any as any_
from pymailsrv.imap.commands import auth, compress, fetch, mailboxes, searching, selected
from pymailsrv.imap.commands.base import Done, Spec
from pymailsrv.imap.session import AUTH, NOT_AUTH, SELECTED

ANY = frozenset({NOT_AUTH, AUTH, SELECTED})
PRE = frozenset({NOT_AUTH})
POST = frozenset({AUTH, SELECTED})
SEL = frozenset({SELECTED})

COMMANDS: dict[str, Spec] = {
    # any state (RFC 3501 §6.1)
    "CAPABILITY": Spec(ANY, any_.capability),
    "NOOP": Spec(ANY, any_.noop, sync=True),
    "LOGOUT": Spec(ANY, any_.logout),
    "ID": Spec(ANY, any_.id_, caps=("ID",)),
    "ENABLE": Spec(POST, any_.enable, caps=("ENABLE", "CONDSTORE", "QRESYNC")),
    # not authenticated (§6.2)
    "STARTTLS": Spec(PRE, auth.starttls),
    "AUTHENTICATE": Spec(PRE, auth.authenticate),
    "LOGIN": Spec(PRE, auth.login),
    # authenticated (§6.3)
    "SELECT": Spec(POST, mailboxes.select),
    "EXAMINE": Spec(POST, mailboxes.select),
    "CREATE": Spec(POST, mailboxes.create),
    "DELETE": Spec(POST, mailboxes.delete),
    "RENAME": Spec(POST, mailboxes.rename),
    "SUBSCRIBE": Spec(POST, mailboxes.subscribe),
    "UNSUBSCRIBE": Spec(POST, mailboxes.subscribe),
    "LIST": Spec(POST, mailboxes.list_, caps=("LIST-EXTENDED", "LIST-STATUS", "CHILDREN", "SPECIAL-USE")),
    "LSUB": Spec(POST, mailboxes.lsub),
    "STATUS": Spec(POST, mailboxes.status),
    "APPEND": Spec(POST, mailboxes.append, caps=("UIDPLUS",)),
    "NAMESPACE": Spec(POST, mailboxes.namespace, caps=("NAMESPACE",)),
    "GETQUOTA": Spec(POST, mailboxes.getquota, caps=("QUOTA", "QUOTA=RES-STORAGE")),
    "GETQUOTAROOT": Spec(POST, mailboxes.getquotaroot),
    "IDLE": Spec(POST, selected.idle, caps=("IDLE",)),
    "COMPRESS": Spec(POST, compress.compress, caps=("COMPRESS=DEFLATE",)),
    # selected (§6.4)
    "CHECK": Spec(SEL, selected.check, sync=True),
    "CLOSE": Spec(SEL, selected.close),
    "UNSELECT": Spec(SEL, selected.unselect, caps=("UNSELECT",)),
    "EXPUNGE": Spec(SEL, selected.expunge),
    "SEARCH": Spec(SEL, searching.search, caps=("ESEARCH",), expunge_ok=False),
    "SORT": Spec(SEL, searching.sort, caps=("SORT",), expunge_ok=False),
    "THREAD": Spec(SEL, searching.thread, caps=("THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT"),
                   expunge_ok=False),
    "FETCH": Spec(SEL, fetch.fetch, expunge_ok=False),
    "STORE": Spec(SEL, selected.store, expunge_ok=False),
    "COPY": Spec(SEL, selected.copy),
    "MOVE": Spec(SEL, selected.copy, caps=("MOVE",)),
    "UID FETCH": Spec(SEL, fetch.fetch),
    "UID STORE": Spec(SEL, selected.store),
    "UID COPY": Spec(SEL, selected.copy),
    "UID MOVE": Spec(SEL, selected.copy),
    "UID SEARCH": Spec(SEL, searching.search),
    "UID SORT": Spec(SEL, searching.sort),
    "UID THREAD": Spec(SEL, searching.thread),
    "UID EXPUNGE": Spec(SEL, selected.expunge, caps=("UIDPLUS",)),
}

__all__ = ["COMMANDS", "Done", "Spec"]
