"""The MTA side of the Sendmail milter protocol and the ``milters`` pipeline stage."""
