"""The POP3 server (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH, RFC 3206 codes).

Modules, bottom up:

- ``replies``: every reply text and response code (Dovecot's texts where clients or scripts see them).
- ``parser``: pure, incremental line splitting (bounded) and command parsing.
- ``content``: stored bytes → wire form (CRLF, dot-stuffing, TOP), pure and without per-line loops.
- ``maildrop``: the login-time snapshot, message numbers, DELE marks, Dovecot-format UIDLs.
- ``options``: what a listener reads from Settings, once.
- ``session``: the read loop, the dispatcher (state gating, error budget, errors mapped to -ERR
  once), login (lock + snapshot) and the end of a maildrop (expunge after QUIT, ``\\Seen``).
- ``auth_commands`` / ``mail_commands``: handlers; ``commands``: the one command table (CAPA is
  derived from it).
- ``server``: listeners on ``net/`` (plain with STLS, implicit TLS), the idle sweep, shutdown.

Behaviour shared with Dovecot's pop3 so users can switch servers without re-downloading: UIDL
``%08Xu%08Xv`` over IMAP UID/UIDVALIDITY (lower-case hex), octet counts with CRLF, ``\\Seen`` after
RETR, ``\\Deleted`` messages hidden, one POP3 session per mailbox (``[IN-USE]``).
"""
