"""pymailsrv.store"""
