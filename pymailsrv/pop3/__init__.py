"""pymailsrv.pop3"""
