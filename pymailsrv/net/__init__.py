"""pymailsrv.net"""
