"""pymailsrv.db"""
