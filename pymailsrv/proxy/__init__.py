"""IMAP/POP3 proxy front nodes (docs/scale-out.md): choose the user's backend, log in to it as
the user, and hand the session over (net/forward.py splices the bytes)."""
