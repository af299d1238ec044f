"""pymailsrv.delivery"""
