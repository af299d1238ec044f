"""Every LMTP reply that differs from SMTP's (STYLE.md rule 4), with Dovecot's lmtp texts so that
Postfix's logs read as they did with Dovecot. ``{addr}`` is a recipient without angle brackets."""

from __future__ import annotations

NEED_LHLO = "503 5.5.1 Error: send LHLO first"
LHLO_SYNTAX = "501 5.5.4 Syntax: LHLO hostname"
INVALID_LHLO = "501 5.5.2 <{name}>: Invalid LHLO name"

# RCPT (Dovecot lmtp's texts)
USER_UNKNOWN = "550 5.1.1 <{addr}> User doesn't exist: {addr}"
LOOKUP_FAILED = "451 4.3.0 <{addr}> Temporary internal error"
OVER_QUOTA = "552 5.2.2 <{addr}> {text}"
OVER_QUOTA_TEMP = "452 4.2.2 <{addr}> {text}"
TOO_MANY_RECIPIENTS = "452 4.5.3 <{addr}> Too many recipients"

# after DATA, one per recipient (RFC 2033 §4.2)
SAVED = "250 2.0.0 <{addr}> {id} Saved"
DELIVERY_FAILED = "{code} {dsn} <{addr}> {text}"
TEMPORARY_FAILURE = "451 4.3.0 <{addr}> Temporary internal error"

ALL = {name: value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str)}
