"""ManageSieve (RFC 5804) and PostfixAdmin vacation parameters (Pigeonhole's names where they exist)."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("managesieve_listen", "listen", "",
          "ManageSieve listener (RFC 5804; Dovecot's port 4190, STARTTLS when a certificate is "
          "configured); empty = off. Users upload, activate and delete their Sieve scripts with it."),
    Param("managesieve_timeout", "time", "10m", "Idle time before a ManageSieve session is closed."),
    Param("managesieve_max_line_length", "size", "65536",
          "Longest ManageSieve command line (without literals)."),
    Param("sieve_quota_max_scripts", "int", "0",
          "Scripts a user may keep (Pigeonhole's name); 0 = no limit.", minimum=0),
    Param("sieve_quota_max_storage", "size", "0",
          "Bytes all of a user's scripts may take together (Pigeonhole's name); 0 = no limit. "
          "One script is at most 1 MiB in any case."),
    Param("postfixadmin_vacation_domain", "str", "",
          "PostfixAdmin's $CONF['vacation_domain'] (vacation.pl's $vacation_domain): only targets "
          "user#domain@ in this domain are vacation pseudo-targets, others with a # are ordinary "
          "addresses; empty: any domain not hosted here."),
    Param("postfixadmin_vacation_interval", "time", "0",
          "Seconds between two vacation replies to one sender when the vacation table has no "
          "interval_time column (vacation.pl's $interval; PostfixAdmin 3.x keeps it per row in "
          "interval_time, which wins); 0 = reply once per absence."),
)
