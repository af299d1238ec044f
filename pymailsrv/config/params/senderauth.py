"""Sender authentication parameters (docs/senderauth.md): DKIM signing keys in OpenDKIM's
KeyTable/SigningTable form, the checks of inbound mail and what they may refuse, ARC sealing."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("dkim_key_table", "str", "",
          "OpenDKIM KeyTable file: lines NAME DOMAIN:SELECTOR:KEYFILE (KEYFILE a PEM RSA or Ed25519 key; "
          "DOMAIN % = the From domain). Used with dkim_signing_table by the dkim_sign stage."),
    Param("dkim_signing_table", "str", "",
          "OpenDKIM SigningTable: lines PATTERN KEYNAME. refile:/path = wildcard patterns "
          "(*@example.com) matched in order; a plain path = keys tried as OpenDKIM does (user@host, host, "
          "user@.parent, .parent, user@*, *). Every matching line signs: an RSA and an Ed25519 key for one "
          "domain dual-sign (RFC 8463). Empty = the dkim_sign stage does nothing."),
    Param("authserv_id", "str", "$myhostname",
          "The authserv-id of the Authentication-Results header the sender_auth stage writes; incoming "
          "headers that claim it are removed as forged (RFC 8601 §5)."),
    Param("sender_auth_restrictions", "list", "",
          "What the sender_auth stage refuses at the end of a message (empty: nothing, results are only "
          "recorded): reject_spf_fail (SPF fail → 550 5.7.23), reject_dmarc_policy (the From domain's "
          "DMARC p=reject → 550 5.7.1, p=quarantine → delivered to virtual_junk_folder). A DNS failure that "
          "decides a result defers (451)."),
    Param("arc_signing_key", "str", "",
          "DOMAIN:SELECTOR:KEYFILE (as a KeyTable value, RSA): ARC-seal (RFC 8617) mail that came in from "
          "outside and is forwarded to a remote destination (an alias), so DMARC still passes after the "
          "forward. Empty = no sealing."),
    Param("virtual_junk_header", "str", "X-Spam-Flag: YES",
          "A message with this header field (name: value, case-insensitive) is delivered into "
          "virtual_junk_folder instead of INBOX; the sender_auth stage adds it for DMARC p=quarantine."),
    Param("virtual_junk_folder", "str", "Junk", "The folder virtual_junk_header sends mail to."),
)
