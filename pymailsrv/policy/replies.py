"""Reply codes and texts of the restriction engine, as Postfix writes them (POSTFIX-SEMANTICS §4).

Texts with ``{name}`` / ``{klass}`` are templates: ``name`` is what the reply is about (the client
``host[ip]``, the HELO name, an address), ``klass`` the class of :data:`CLASSES`.
The codes here are Postfix's defaults; where a parameter overrides the code
(``relay_domains_reject_code`` …), :func:`dsn_for` makes the enhanced code's class digit follow it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    dsn: str
    text: str

    def format(self, **values: str) -> str:
        return self.text.format(**values)


def dsn_for(code: int, dsn: str) -> str:
    """``dsn`` with its class digit made to agree with ``code`` (450 + 5.7.1 → 4.7.1)."""
    first = str(code)[0]
    if first in "45" and dsn[:1] in "245" and dsn[:1] != first:
        return first + dsn[1:]
    return dsn


# Reply classes (the word before "rejected:")
CLIENT = "Client host"
HELO = "Helo command"
SENDER = "Sender address"
RECIPIENT = "Recipient address"
DATA = "Data command"
END_OF_DATA = "End-of-data"

# Generic access-map / restriction shapes
REJECTED = "<{name}>: {klass} rejected: {text}"
ACCESS_DENIED = "Access denied"

REJECT = Reply(554, "5.7.1", REJECTED)  # access map REJECT, the ``reject`` restriction
DEFER = Reply(450, "4.7.1", REJECTED)  # access map DEFER, the ``defer`` restriction

RELAY_DENIED = Reply(554, "5.7.1", "<{name}>: Relay access denied")
RELAY_DEFERRED = Reply(454, "4.7.1", "<{name}>: Relay access denied")

_UNKNOWN = "<{name}>: {klass} rejected: User unknown in "
UNKNOWN_VIRTUAL_MAILBOX = Reply(550, "5.1.1", _UNKNOWN + "virtual mailbox table")
UNKNOWN_VIRTUAL_ALIAS = Reply(550, "5.1.1", _UNKNOWN + "virtual alias table")
UNKNOWN_LOCAL = Reply(550, "5.1.1", _UNKNOWN + "local recipient table")
UNKNOWN_RELAY = Reply(550, "5.1.1", _UNKNOWN + "relay recipient table")
SENDER_UNKNOWN_DSN = "5.1.0"  # the sender form of the unlisted-user replies
TEMP_LOOKUP = Reply(451, "4.3.0", "<{name}>: Temporary lookup failure")

PIPELINING = Reply(503, "5.5.0", "<{name}>: {klass} rejected: Improper use of SMTP command pipelining")
NON_FQDN_HELO = Reply(504, "5.5.2", "<{name}>: Helo command rejected: need fully-qualified hostname")
NON_FQDN_ADDRESS = Reply(504, "5.5.2", "<{name}>: {klass} rejected: need fully-qualified address")
INVALID_HELO = Reply(501, "5.5.2", "<{name}>: Helo command rejected: Invalid name")
UNKNOWN_HELO = Reply(450, "4.7.1", "<{name}>: Helo command rejected: Host not found")
UNKNOWN_SENDER_DOMAIN = Reply(450, "4.1.8", "<{name}>: Sender address rejected: Domain not found")
UNKNOWN_RECIPIENT_DOMAIN = Reply(450, "4.1.2", "<{name}>: Recipient address rejected: Domain not found")
_NULL_MX = "<{name}>: {klass} rejected: Domain {domain} does not accept mail (nullMX)"
NULL_MX_SENDER = Reply(550, "5.7.27", _NULL_MX)
NULL_MX_RECIPIENT = Reply(556, "5.1.10", _NULL_MX)
DEFER_IF_PERMIT_TEXT = "defer_if_permit requested"
DEFER_IF_REJECT_TEXT = "defer_if_reject requested"

RBL = Reply(554, "5.7.1", "Service unavailable; {klass} [{what}] blocked using {zone}{reason}")

LOGIN_NOT_OWNER = Reply(553, "5.7.1", "<{name}>: Sender address rejected: not owned by user {login}")
LOGIN_NOT_LOGGED_IN = Reply(553, "5.7.1", "<{name}>: Sender address rejected: not logged in")

BAD_RECIPIENT_SYNTAX = Reply(501, "5.1.3", "Bad recipient address syntax")
BAD_SENDER_SYNTAX = Reply(501, "5.1.7", "Bad sender address syntax")

SERVER_CONFIG = Reply(451, "4.3.5", "Server configuration error")

ALL = {
    name: value for name, value in dict(globals()).items() if isinstance(value, Reply)
}
