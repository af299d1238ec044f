"""Message bytes shared by every package that stores, sends or writes mail: line endings,
dot-stuffing, the end of the header block, and header text from client-supplied values.

A leaf package (pure functions, no I/O): smtp, queue, delivery, store, imap and pop3 all use it,
so each rule lives once (STYLE.md, "one place for each").
"""
