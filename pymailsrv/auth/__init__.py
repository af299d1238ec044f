"""pymailsrv.auth"""
