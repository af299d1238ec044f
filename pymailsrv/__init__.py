"""pymailsrv: one asyncio process for SMTP, IMAP4 and POP3 over a PostfixAdmin database."""

__version__ = "0.1.0"
