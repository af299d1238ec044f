"""pymailsrv.smtp"""
