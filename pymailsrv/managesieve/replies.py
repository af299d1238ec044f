"""ManageSieve responses (RFC 5804 §1.3, §4): texts and response codes in one place, and the
encoding of strings on the wire (quoted when that is safe, else a literal)."""

from __future__ import annotations

IMPLEMENTATION = "pymailsrv"
VERSION = "1.0"  # RFC 5804 §1.7

GREETING = "{mail_name} ManageSieve ready."
LOGGED_IN = "Logged in."
LOGOUT = "Logout completed."
BEGIN_TLS = "Begin TLS negotiation now."
TLS_ACTIVE = "TLS is already active."
TLS_UNAVAILABLE = "TLS support isn't enabled."
DONE = "Done."
UNAUTHENTICATED = "Unauthenticate completed."
PUT_OK = "PUTSCRIPT completed."
CHECK_OK = "Script is valid."
SPACE_OK = "Putscript would succeed."
ACTIVE_OK = "Setactive completed."
DELETE_OK = "Deletescript completed."
RENAME_OK = "Renamescript completed."
LIST_OK = "Listscripts completed."
GET_OK = "Getscript completed."

UNKNOWN_COMMAND = "Unknown command."
NOT_AUTHENTICATED = "Authenticate first."
ALREADY_AUTHENTICATED = "Already authenticated."
BAD_ARGUMENTS = "Invalid arguments."
NOT_UTF8 = "Not valid UTF-8."
TOO_MANY_ERRORS = "Too many invalid commands."
AUTH_FAILED = "Authentication failed."
AUTH_ABORTED = "Authentication aborted by client."
AUTH_UNKNOWN_MECH = "Unsupported authentication mechanism."
AUTH_MALFORMED = "Invalid SASL response."
PLAINTEXT_DISALLOWED = "Plaintext authentication disallowed on non-secure connections."
BACKEND_UNAVAILABLE = "Account is temporarily unavailable."  # Dovecot's proxy text
BACKEND_GONE = "Backend server disconnected."
XCLIENT_UNTRUSTED = "You are not from trusted IP."
AUTH_TEMP = "Temporary authentication failure, try again later."
TEMP_FAILURE = "Temporary server failure, try again later."
INTERNAL_ERROR = "Internal error occurred. Refer to server log for more information."
SHUTDOWN = "Server shutting down."
TIMEOUT = "Disconnected for inactivity."
IP_LIMIT = "Maximum number of connections from your IP ({limit}) exceeded."

CODE_ENCRYPT_NEEDED = "ENCRYPT-NEEDED"
CODE_TRYLATER = "TRYLATER"
CODE_WARNINGS = "WARNINGS"


def string(text: str | bytes) -> bytes:
    """A ManageSieve string (RFC 5804 §4): quoted if it is short, one line and has no NUL;
    otherwise a literal (``{n}`` CRLF octets)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) <= 1024 and not any(c in data for c in b"\r\n\0"):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def response(kind: str, text: str = "", code: str = "") -> bytes:
    """``OK`` / ``NO`` / ``BYE`` [``(code)``] [string] CRLF (RFC 5804 §4 response-*)."""
    out = kind.encode("ascii")
    if code:
        out += b" (" + code.encode("utf-8") + b")"
    if text:
        out += b" " + string(text)
    return out + b"\r\n"


def ok(text: str = "", code: str = "") -> bytes:
    return response("OK", text, code)


def no(text: str = "", code: str = "") -> bytes:
    return response("NO", text, code)


def bye(text: str = "", code: str = "") -> bytes:
    return response("BYE", text, code)
