"""POP3 reply texts (STYLE.md rule 4): every line the server sends is built from these constants.

Texts follow Dovecot's pop3 where an admin or a client script might match on them; response
codes are RFC 2449 §8 / RFC 3206.
"""

from __future__ import annotations

from typing import Final

CRLF: Final = b"\r\n"
END: Final = b".\r\n"  # RFC 1939 §3: a multi-line response ends with a lone dot

# RFC 3206 / RFC 2449 §8 response codes
CODE_AUTH: Final = "AUTH"
CODE_SYS_TEMP: Final = "SYS/TEMP"
CODE_IN_USE: Final = "IN-USE"

GREETING: Final = "{mail_name} ready."
CAPA_HEADER: Final = "Capability list follows"
LOGGED_IN: Final = "Logged in."
LOGGING_OUT: Final = "Logging out."
LOGGING_OUT_DELETED: Final = "Logging out, messages deleted."
BEGIN_TLS: Final = "Begin TLS negotiation now."
MARKED_DELETED: Final = "Marked to be deleted."
LIST_HEADER: Final = "{count} messages ({octets} octets)"
RETR_OK: Final = "{octets} octets"
AUTH_MECHS_HEADER: Final = "Supported SASL mechanisms follow"

UNKNOWN_COMMAND: Final = "Unknown command."
TOO_MANY_BAD: Final = "Too many bad commands."
LINE_TOO_LONG: Final = "Input line too long."
INVALID_UTF8: Final = "Invalid characters in command."
NOT_AUTHENTICATED: Final = "Unknown command or not logged in."
ALREADY_AUTHENTICATED: Final = "Already logged in."
NO_ARGUMENTS_ALLOWED: Final = "Command takes no arguments."
MISSING_ARGUMENT: Final = "Missing argument."
TOO_MANY_ARGUMENTS: Final = "Too many arguments."
INVALID_NUMBER: Final = "Invalid message number: {arg}"
INVALID_LINES: Final = "Invalid number of lines: {arg}"
NO_SUCH_MESSAGE: Final = "There's no message {n}."
MESSAGE_DELETED: Final = "Message is deleted."
NO_USERNAME: Final = "No username given."
AUTH_FAILED: Final = "Authentication failed."
AUTH_ABORTED: Final = "Authentication aborted by client."
AUTH_INVALID_BASE64: Final = "Invalid base64 data."
AUTH_MALFORMED: Final = "Malformed SASL response."
AUTH_UNKNOWN_MECH: Final = "Unsupported authentication mechanism."
PLAINTEXT_DISALLOWED: Final = "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
AUTH_TEMP: Final = "Temporary authentication failure."
IN_USE: Final = "Mailbox is locked by another POP3 session."
TLS_ACTIVE: Final = "TLS is already active."
TLS_UNAVAILABLE: Final = "TLS support isn't enabled."
TEMP_FAILURE: Final = "Temporary failure, please try again later."
INTERNAL_ERROR: Final = "Internal error occurred. Refer to server log for more information."
DELETE_FAILED: Final = "Some deleted messages were not removed."
SHUTDOWN: Final = "Server shutting down."
BACKEND_UNAVAILABLE: Final = "Account is temporarily unavailable."  # Dovecot's proxy text
BACKEND_GONE: Final = "Backend server disconnected."
XCLIENT_UNTRUSTED: Final = "You are not from trusted IP"  # Dovecot's pop3-login
USERIP_LIMIT: Final = "Maximum number of connections from user+IP exceeded (mail_max_userip_connections={limit})"
IP_LIMIT: Final = "Maximum number of connections from IP exceeded (login_max_ip_connections={limit})"

IMPLEMENTATION: Final = "pymailsrv"
MESSAGE_EXPUNGED: Final = "Message {n} was removed by another session."

# RFC 2449 capabilities of the server itself (commands contribute theirs through the table)
SERVER_CAPABILITIES: Final = ("RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER",
                              f"IMPLEMENTATION {IMPLEMENTATION}")


def ok(text: str = "") -> bytes:
    """``+OK text`` as one wire line."""
    return (f"+OK {text}" if text else "+OK").encode("utf-8") + CRLF


def err(text: str, code: str = "") -> bytes:
    """``-ERR [CODE] text`` as one wire line (RFC 2449 §8 puts the code first)."""
    line = f"-ERR [{code}] {text}" if code else f"-ERR {text}"
    return line.encode("utf-8") + CRLF


def multiline(first: bytes, lines: list[str]) -> bytes:
    """A multi-line response: status line, the lines (dot-stuffed, RFC 1939 §3), the terminator."""
    body = "".join(("." + item if item.startswith(".") else item) + "\r\n" for item in lines)
    return first + body.encode("utf-8") + END
