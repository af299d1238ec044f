"""Dovecot's services for Postfix, in Dovecot's wire formats: the authentication protocol that
Postfix's ``smtpd_sasl_type = dovecot`` speaks, and the quota-status policy service."""
