"""``pymailsrv doctor``: preflight and health checks, like ``postfix check`` plus DNS advice.

Local checks (``checks_files``, ``checks_certs``, ``checks_database``, ``checks_service``): the
ownership and modes of the directories and key files, the certificates served and their expiry
(SNI maps and the ACME certificate too), the database reachable with its schema at head, and each
listener either served (the server answers its greeting) or free to bind. ``checks_dns``: for
this host and each hosted domain, the MX, SPF, DKIM, DMARC and PTR records found against what
should be published, with the records to add. ``--quick`` runs only the "is it serving" checks
(listeners and control socket; no DNS): a container HEALTHCHECK. Errors make the exit status 1.
"""

from pymailsrv.doctor.run import run

__all__ = ["run"]
