"""Sieve filtering at delivery (Pigeonhole's parameter names)."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("sieve_before", "list", "",
          "Sieve scripts run before the user's own one, for every local delivery (Pigeonhole's "
          "sieve_before): files, or directories whose *.sieve files run in name order. A `stop` "
          "in one ends the user's script too; e.g. a rule filing `X-Spam: Yes` into Junk."),
    Param("sieve_after", "list", "",
          "Sieve scripts run after the user's one (Pigeonhole's sieve_after), unless a script "
          "stopped; files or directories as sieve_before."),
    Param("sieve_global", "path", "",
          "Directory of the scripts `include :global \"NAME\"` reads (NAME.sieve; Pigeonhole's "
          "sieve_global). Personal includes come from the user's sieve/ directory."),
    Param("sieve_user_scripts", "bool", "yes",
          "Run the user's active script: the .dovecot.sieve link in the Maildir root, as Dovecot "
          "keeps it (sieve = file:~/sieve;active=~/.dovecot.sieve with the Maildir as home)."),
    Param("sieve_extensions", "list", "",
          "Sieve extensions scripts may require; empty = every one pymailsrv implements (see "
          "docs/sieve.md). A user's script that needs another one fails and the mail is kept."),
    Param("sieve_max_actions", "int", "32", "Actions one run may take (Pigeonhole's default).", minimum=1),
    Param("sieve_max_redirects", "int", "4",
          "Redirects one message may cause (Pigeonhole's default); a script wanting more fails "
          "and the message is kept.", minimum=0),
    Param("sieve_redirect_envelope_from", "enum", "sender",
          "Envelope sender of redirected mail: the original sender (Pigeonhole's default), or "
          "the user's address (helps SPF at the next hop).", choices=("sender", "recipient")),
    Param("sieve_vacation_min_period", "time", "1d",
          "Shortest :days/:seconds a vacation may ask for (RFC 6131; 0 allows a reply to each message)."),
    Param("sieve_vacation_default_period", "time", "7d", "Vacation period when the script gives none (RFC 5230)."),
    Param("sieve_vacation_max_period", "time", "60d", "Longest vacation period a script may ask for."),
    Param("sieve_duplicate_default_period", "time", "12h", "How long `duplicate` remembers an id (RFC 7352)."),
    Param("sieve_duplicate_max_period", "time", "2d", "The longest :seconds `duplicate` honours."),
    Param("sieve_script_cache_size", "int", "1000",
          "Compiled scripts kept in memory per process, keyed by the file's identity (device, "
          "inode, size, modification time), so an edited script is compiled again.", minimum=1),
)
