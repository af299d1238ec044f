"""pymailsrv.config"""
