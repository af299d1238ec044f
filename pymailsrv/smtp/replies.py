"""Every SMTP reply pymailsrv sends, as named constants (STYLE.md rule 4).

Texts follow Postfix's smtpd (POSTFIX-SEMANTICS §4) so that admins, log parsers and clients see the
answers they know. Templates take ``str.format`` fields: ``{host}`` is myhostname, ``{addr}`` an
address without angle brackets. Every reply except the greeting-like HELO/EHLO/syntax replies that
Postfix itself sends without one carries an RFC 3463 enhanced status code (RFC 2034), whose class
digit matches the basic code (checked by tests/smtp/test_replies.py).
"""

from __future__ import annotations

# Greeting, HELO/EHLO --------------------------------------------------------------------------
GREETING = "220 {banner}"
HELO_OK = "250 {host}"
HELO_SYNTAX = "501 Syntax: HELO hostname"
EHLO_SYNTAX = "501 Syntax: EHLO hostname"
NEED_HELO = "503 5.5.1 Error: send HELO/EHLO first"
INVALID_HELO = "501 5.5.2 <{name}>: Helo command rejected: Invalid name"

# Generic ----------------------------------------------------------------------------------------
OK = "250 2.0.0 Ok"
QUIT_OK = "221 2.0.0 Bye"
UNKNOWN_COMMAND = "502 5.5.2 Error: command not recognized"
BAD_SYNTAX = "500 5.5.2 Error: bad syntax"
LINE_TOO_LONG = "500 5.5.2 Error: line too long"
NOT_IMPLEMENTED = "502 5.5.1 Error: command not implemented"
VRFY_DISABLED = "502 5.5.1 VRFY command is disabled"
VRFY_SYNTAX = "501 5.5.4 Syntax: VRFY address"
VRFY_OK = "252 2.0.0 {addr}"
NOOP_OK = OK
RSET_OK = OK
RSET_SYNTAX = "501 5.5.4 Syntax: RSET"
QUIT_SYNTAX = "501 5.5.4 Syntax: QUIT"

# Transaction ------------------------------------------------------------------------------------
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
MAIL_SYNTAX = "501 5.5.4 Syntax: MAIL FROM:<address>"
RCPT_SYNTAX = "501 5.5.4 Syntax: RCPT TO:<address>"
BAD_SENDER = "501 5.1.7 Bad sender address syntax"
BAD_RECIPIENT = "501 5.1.3 Bad recipient address syntax"
NESTED_MAIL = "503 5.5.1 Error: nested MAIL command"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
NEED_RCPT = "503 5.5.1 Error: need RCPT command"
NO_VALID_RCPT = "554 5.5.1 Error: no valid recipients"
DATA_SYNTAX = "501 5.5.4 Syntax: DATA"
DATA_GO = "354 End data with <CR><LF>.<CR><LF>"
QUEUED = "250 2.0.0 Ok: queued as {queue_id}"
BAD_SIZE = "501 5.5.4 Bad message size syntax"
BAD_BODY = "501 5.5.4 Bad BODY parameter syntax"
BAD_SMTPUTF8 = "501 5.5.4 Bad SMTPUTF8 parameter syntax"
BAD_RET = "501 5.5.4 Bad RET parameter syntax"
BAD_ENVID = "501 5.5.4 Bad ENVID parameter syntax"
BAD_NOTIFY = "501 5.5.4 Error: Bad NOTIFY parameter syntax"
BAD_ORCPT = "501 5.5.4 Error: Bad ORCPT parameter syntax"
UNSUPPORTED_OPTION = "555 5.5.4 Unsupported option: {option}"

# Limits -----------------------------------------------------------------------------------------
SIZE_EXCEEDED = "552 5.3.4 Message size exceeds fixed limit"
TOO_MANY_RECIPIENTS = "452 4.5.3 Error: too many recipients"
TOO_MANY_ERRORS = "421 4.7.0 {host} Error: too many errors"
TIMEOUT = "421 4.4.2 {host} Error: timeout exceeded"
TOO_MANY_CONNECTIONS = "421 4.7.0 {host} Error: too many connections from {ip}"
TOO_MANY_CONNECTION_ATTEMPTS = "421 4.7.0 {host} Error: too many connections from {ip}"
BARE_LF = "521 5.5.2 {host} Error: bare <LF> received"
REINJECT_DENIED = "421 4.7.0 {host} Error: access denied for {ip}"
SHUTTING_DOWN = "421 4.3.2 {host} Service shutting down, closing transmission channel"

# TLS --------------------------------------------------------------------------------------------
STARTTLS_GO = "220 2.0.0 Ready to start TLS"
STARTTLS_SYNTAX = "501 5.5.4 Syntax: STARTTLS"
TLS_ALREADY = "554 5.5.1 Error: TLS already active"
TLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"

# AUTH (RFC 4954) --------------------------------------------------------------------------------
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.8 Error: authentication failed: authentication failure"
AUTH_BAD_MECHANISM = "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"
AUTH_TEMPFAIL = "454 4.7.0 Temporary authentication failure"
AUTH_NOT_ENABLED = "503 5.5.1 Error: authentication not enabled"
AUTH_ALREADY = "503 5.5.1 Error: already authenticated"
AUTH_IN_TRANSACTION = "503 5.5.1 Error: MAIL transaction in progress"
AUTH_SYNTAX = "501 5.5.4 Syntax: AUTH mechanism"
AUTH_ABORTED = "501 5.7.0 Authentication aborted"
AUTH_BAD_BASE64 = "501 5.5.2 Cannot decode response"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
SENDER_NOT_OWNED = "553 5.7.1 <{addr}>: Sender address rejected: not owned by user {login}"

# Server faults: fixed texts, never the exception (STYLE.md rule 3) --------------------------------
QUEUE_WRITE_ERROR = "451 4.3.0 Error: queue file write error"
SERVER_CONFIG_ERROR = "451 4.3.5 Server configuration error"
TEMPORARY_LOOKUP_FAILURE = "451 4.3.0 Temporary lookup failure"

# header_checks (cleanup) ------------------------------------------------------------------------
CONTENT_REJECTED = "550 5.7.1 {text}"
CONTENT_REJECTED_DEFAULT = "message content rejected"

# Every constant above, for the class-digit test.
ALL = {name: value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str)}
