"""pymailsrv.imap"""
