"""PostfixAdmin's ``$CONF['encrypt']`` values (its ``pacrypt()``): the form in which each one
stores a new password. Every password pymailsrv writes (``mailbox add|passwd``, ``pw hash``, the
demo mailbox) takes the form the site's PostfixAdmin would have written, so its user portal and
CLI verify it, and Dovecot and our Authenticator read it. Pure functions (CPU only).

Implementation notes (PostfixAdmin 3.3 ``functions.inc.php``, and the values PostfixAdmin 4 added):

* ``md5crypt`` (3.3's default): ``$1$`` MD5-crypt, unprefixed. Its check re-runs md5crypt with
  the stored salt, so it verifies ``$1$`` values only.
* ``md5``: the hex MD5, unprefixed. ``cleartext``: the password itself, unprefixed.
* ``system``: PHP's crypt() with the salt PHP picks: MD5-crypt on PHP 7 (the example in
  PostfixAdmin's HASHING.md), DES on PHP 8. We write MD5-crypt, as DES keeps only 8 characters of
  a password; its check, crypt() with the stored value as the salt, accepts both.
* ``mysql_encrypt``: MySQL's ENCRYPT() (the system's crypt(3)) with a SHA512-crypt setting,
  unprefixed. 3.3 means a random 16-character salt, but quotes it into ``CONCAT('$6$', '$6$…')``,
  so the salt ends up empty (``$6$$…``). We write the salted form; its check, ENCRYPT(password,
  stored), verifies either.
* ``authlib``: courier-authlib's ``{md5raw}`` and the hex MD5 (its default authlib_default_flavor).
* ``dovecot:SCHEME``: what ``doveadm pw -s SCHEME`` prints, ``{SCHEME}`` prefix included.
* ``php_crypt[:METHOD[:DIFFICULTY[:PREFIX]]]``: PHP's crypt() with a fresh salt for METHOD (DES,
  MD5, BLOWFISH, SHA256, SHA512; SHA512 when absent), DIFFICULTY the bcrypt cost (4-31, default
  10) or the SHA-crypt rounds (1000-999999999, default 5000; ignored for DES and MD5), PREFIX a
  ``{SCHEME}`` written in front (``php_crypt:SHA512::{SHA512-CRYPT}``).
* ``sha512.b64``: ``{SHA512-CRYPT.B64}`` and the base64 of a SHA512-crypt string (PostfixAdmin 4
  also calls it ``sha512crypt.b64``).
* PostfixAdmin 4 also takes a Dovecot scheme name alone (``SHA512-CRYPT``, ``ARGON2ID``,
  ``BLF-CRYPT.B64``…, written as doveadm writes it) and ``courier:md5|md5raw|ssha|sha256``.
* Salts are random, from crypt's alphabet: the form is PostfixAdmin's, the bytes are new. The
  3.3 keywords are matched without regard to case (3.3 itself wants them lower case).
"""

from __future__ import annotations

from dataclasses import dataclass

from pymailsrv.auth.schemes import hash_password, lookup
from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError

DEFAULT = "md5crypt"
VALUES = ("md5crypt, md5, system, cleartext, mysql_encrypt, authlib, sha512.b64, "
          "php_crypt[:METHOD[:DIFFICULTY[:{PREFIX}]]], dovecot:SCHEME or a Dovecot scheme name")

# keyword -> (the schemes.py scheme that makes the hash, what is written in front of its data)
_KEYWORDS: dict[str, tuple[str, str]] = {
    "md5crypt": ("MD5-CRYPT", ""),
    "system": ("MD5-CRYPT", ""),
    "md5": ("PLAIN-MD5", ""),
    "cleartext": ("PLAIN", ""),
    "mysql_encrypt": ("SHA512-CRYPT", ""),
    "authlib": ("PLAIN-MD5", "{md5raw}"),
    "sha512.b64": ("SHA512-CRYPT.B64", "{SHA512-CRYPT.B64}"),
    "sha512crypt.b64": ("SHA512-CRYPT.B64", "{SHA512-CRYPT.B64}"),
    "courier:md5": ("PLAIN-MD5.B64", "{MD5}"),
    "courier:md5raw": ("PLAIN-MD5", "{MD5RAW}"),
    "courier:ssha": ("SSHA", "{SSHA}"),
    "courier:sha256": ("SHA256", "{SHA256}"),
}
# the default_pass_scheme that reads a keyword's unprefixed output (every other one is crypt(3))
_UNPREFIXED_READER = {"md5": "MD5", "cleartext": "PLAIN"}
# php_crypt METHOD -> (scheme, default difficulty, allowed difficulty range or None: ignored)
_PHP_CRYPT: dict[str, tuple[str, int, tuple[int, int] | None]] = {
    "DES": ("DES-CRYPT", 0, None),
    "MD5": ("MD5-CRYPT", 0, None),
    "BLOWFISH": ("BLF-CRYPT", 10, (4, 31)),
    "SHA256": ("SHA256-CRYPT", 0, (1000, 999_999_999)),
    "SHA512": ("SHA512-CRYPT", 0, (1000, 999_999_999)),
}

# the {SCHEME}s under which Dovecot (and schemes.py) check any crypt(3) string
_CRYPT_READERS = {"CRYPT", "DES-CRYPT", "SHA256-CRYPT", "SHA512-CRYPT", "BLF-CRYPT"}


class UnknownEncrypt(ValueError):
    """A value PostfixAdmin's pacrypt() would refuse, or one whose hash pymailsrv cannot read."""


@dataclass(frozen=True, slots=True)
class Encrypt:
    """One ``$CONF['encrypt']`` value, ready to hash."""

    setting: str
    scheme: str  # the schemes.py name that makes the hash
    prefix: str  # written in front of the scheme's data ("" = unprefixed, as PostfixAdmin writes it)
    rounds: int = 0  # 0 = the scheme's default
    unprefixed_scheme: str = "CRYPT"  # the default_pass_scheme that reads it when unprefixed

    def hash(self, password: str, *, rounds: int = 0) -> str:
        """A new stored value; ``rounds`` overrides the setting's. Raises schemes.InvalidRounds."""
        value = hash_password(password, self.scheme, rounds=rounds or self.rounds)
        return self.prefix + value.partition("}")[2]


def parse(setting: str) -> Encrypt:
    """The Encrypt of a ``$CONF['encrypt']`` value; raises UnknownEncrypt."""
    text = setting.strip()
    low = text.lower()
    if low in _KEYWORDS:
        scheme, prefix = _KEYWORDS[low]
        return Encrypt(text, scheme, prefix, unprefixed_scheme=_UNPREFIXED_READER.get(low, "CRYPT"))
    if low == "php_crypt" or low.startswith("php_crypt:"):
        return _php_crypt(text)
    name = text[len("dovecot:"):] if low.startswith("dovecot:") else text
    return _dovecot(text, name)


def _dovecot(setting: str, name: str) -> Encrypt:
    scheme = name.strip().upper()
    found = lookup(scheme)
    if not scheme or found is None or found[0].generate is None:
        raise UnknownEncrypt(f'unknown value "{setting}" ({VALUES})')
    return Encrypt(setting, scheme, "{" + scheme + "}")


def _php_crypt(setting: str) -> Encrypt:
    fields = setting.split(":")
    method = fields[1].strip().upper() if len(fields) > 1 and fields[1].strip() else "SHA512"
    if method not in _PHP_CRYPT or len(fields) > 4:
        raise UnknownEncrypt(f'unknown php_crypt method in "{setting}" '
                             f"(php_crypt:METHOD with METHOD one of {', '.join(_PHP_CRYPT)})")
    scheme, rounds, allowed = _PHP_CRYPT[method]
    difficulty = fields[2].strip() if len(fields) > 2 else ""
    if difficulty and allowed is not None:
        if not difficulty.isdigit() or not allowed[0] <= int(difficulty) <= allowed[1]:
            raise UnknownEncrypt(f'bad difficulty "{difficulty}" for {method} '
                                 f"(from {allowed[0]} to {allowed[1]})")
        rounds = int(difficulty)
    prefix = fields[3].strip() if len(fields) > 3 else ""
    readers = _CRYPT_READERS | ({"MD5-CRYPT", "MD5"} if method == "MD5" else set())
    if prefix and not (prefix.startswith("{") and prefix.endswith("}") and prefix[1:-1].upper() in readers):
        names = ", ".join("{" + name + "}" for name in sorted(readers))
        raise UnknownEncrypt(f'the prefix "{prefix}" is not a scheme that reads {method} crypt strings ({names})')
    return Encrypt(setting, scheme, prefix, rounds)


def from_settings(settings: Settings) -> Encrypt:
    """The site's ``postfixadmin_encrypt``; ConfigError when PostfixAdmin would not know it."""
    try:
        return parse(settings.get_str("postfixadmin_encrypt") or DEFAULT)
    except UnknownEncrypt as exc:
        raise ConfigError(f"postfixadmin_encrypt: {exc}") from None


def unprefixed_scheme(settings: Settings, encrypt: Encrypt | None = None) -> str:
    """``default_pass_scheme``, or when that is empty the scheme that reads what
    ``postfixadmin_encrypt`` writes without a prefix (md5: MD5, cleartext: PLAIN, else CRYPT)."""
    return settings.get_str("default_pass_scheme") or (encrypt or from_settings(settings)).unprefixed_scheme
