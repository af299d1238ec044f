"""pymailsrv.queue"""
