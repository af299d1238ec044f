"""pymailsrv.policy"""
