"""``postfixadmin_encrypt``: for each PostfixAdmin ``$CONF['encrypt']`` value, the hash pymailsrv
writes has the form PostfixAdmin's pacrypt() writes, PostfixAdmin's check accepts it (reasoned
from its functions.inc.php here; with PHP's own crypt() where PHP is installed; with MariaDB's
ENCRYPT() for mysql_encrypt), and our Authenticator reads it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest

from pymailsrv.auth import libcrypt, pacrypt
from pymailsrv.auth.schemes import InvalidRounds, verify_password
from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError

PASSWORD = "Pässwörd 1"
IN_CI = os.environ.get("CI", "").lower() == "true"

# setting -> the stored form PostfixAdmin writes with it
FORMS = {
    "md5crypt": r"\$1\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{22}",
    "system": r"\$1\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{22}",
    "md5": r"[0-9a-f]{32}",
    "cleartext": re.escape(PASSWORD),
    "mysql_encrypt": r"\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "authlib": r"\{md5raw\}[0-9a-f]{32}",
    "sha512.b64": r"\{SHA512-CRYPT\.B64\}[A-Za-z0-9+/]+=*",
    "sha512crypt.b64": r"\{SHA512-CRYPT\.B64\}[A-Za-z0-9+/]+=*",
    "php_crypt": r"\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "php_crypt:SHA512": r"\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "php_crypt:SHA512:6000": r"\$6\$rounds=6000\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "php_crypt:SHA256:1000:{SHA256-CRYPT}": r"\{SHA256-CRYPT\}\$5\$rounds=1000\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{43}",
    "php_crypt:SHA512::{SHA512-CRYPT}": r"\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "php_crypt:BLOWFISH": r"\$2y\$10\$[./0-9A-Za-z]{53}",
    "php_crypt:BLOWFISH:5": r"\$2y\$05\$[./0-9A-Za-z]{53}",
    "php_crypt:MD5": r"\$1\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{22}",
    "php_crypt:DES": r"[./0-9A-Za-z]{13}",
    "courier:md5": r"\{MD5\}[A-Za-z0-9+/]{22}==",
    "courier:md5raw": r"\{MD5RAW\}[0-9a-f]{32}",
    "courier:ssha": r"\{SSHA\}[A-Za-z0-9+/]{32}",
    "courier:sha256": r"\{SHA256\}[A-Za-z0-9+/]{43}=",
    "dovecot:SHA512-CRYPT": r"\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "dovecot:BLF-CRYPT": r"\{BLF-CRYPT\}\$2y\$05\$[./0-9A-Za-z]{53}",
    "dovecot:ARGON2I": r"\{ARGON2I\}\$argon2i\$v=19\$m=32768,t=4,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}",
    "dovecot:cram-md5": r"\{CRAM-MD5\}[0-9a-f]{64}",
    "dovecot:PLAIN-MD5": r"\{PLAIN-MD5\}[0-9a-f]{32}",
    "SHA512-CRYPT": r"\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "SHA256": r"\{SHA256\}[A-Za-z0-9+/]{43}=",
}

# values whose hashes PostfixAdmin makes and checks with doveadm pw (natively in PostfixAdmin 4)
DOVEADM_FORMS = [s for s in FORMS if s.startswith("dovecot:") or s in ("SHA512-CRYPT", "SHA256")]
PFA_FORMS = [s for s in FORMS if s not in DOVEADM_FORMS]
DETERMINISTIC = ("CRAM-MD5", "PLAIN-MD5", "SHA256")  # PostfixAdmin compares doveadm's fresh output


def system_crypt(password: str, setting: str) -> str:
    """crypt(3) of the system, as PHP's crypt() and MySQL's ENCRYPT() compute it."""
    value = libcrypt.crypt(password.encode(), setting)
    if value is None:
        pytest.skip("the system's crypt(3) is not available")
    return value


def postfixadmin_check(setting: str, password: str, stored: str) -> bool:
    """pacrypt(password, stored) == stored, reasoned from PostfixAdmin 3.3's functions.inc.php
    (PostfixAdmin 4's additions for courier:*); dovecot:* runs doveadm there (see below)."""
    low = setting.lower()
    md5 = hashlib.md5(password.encode())
    if low == "md5crypt":  # its own md5crypt(), the salt taken from the stored value's 3rd field
        salt = stored.split("$")[2] if stored.count("$") >= 2 else ""
        computed = system_crypt(password, f"$1${salt[:8]}$")
    elif low in ("system", "mysql_encrypt") or low.startswith("php_crypt"):
        # crypt($pw, $pw_db) / ENCRYPT(pw, pw_db); php_crypt first takes off a {PREFIX}
        m = re.fullmatch(r"(\{[-A-Z0-9]+\})?(.+)", stored)
        assert m is not None
        computed = (m.group(1) or "") + system_crypt(password, m.group(2))
    elif low == "md5":
        computed = md5.hexdigest()
    elif low == "cleartext":
        computed = password
    elif low == "authlib":  # authlib_default_flavor md5raw
        computed = "{md5raw}" + md5.hexdigest()
    elif low in ("sha512.b64", "sha512crypt.b64"):
        inner = base64.b64decode(stored.removeprefix("{SHA512-CRYPT.B64}"))
        assert inner.startswith(b"$6$")
        computed = "{SHA512-CRYPT.B64}" + base64.b64encode(system_crypt(password, inner.decode()).encode()).decode()
    elif low == "courier:md5":
        computed = "{MD5}" + base64.b64encode(md5.digest()).decode()
    elif low == "courier:md5raw":
        computed = "{MD5RAW}" + md5.hexdigest()
    elif low == "courier:sha256":
        computed = "{SHA256}" + base64.b64encode(hashlib.sha256(password.encode()).digest()).decode()
    elif low == "courier:ssha":  # the salt is what follows the 20-byte SHA-1 digest
        salt = base64.b64decode(stored.removeprefix("{SSHA}"))[20:]
        computed = "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()
    else:
        raise AssertionError(f"no PostfixAdmin check for {setting}")
    return computed == stored


@pytest.fixture(scope="module")
def written() -> dict[str, str]:
    return {setting: pacrypt.parse(setting).hash(PASSWORD) for setting in FORMS}


@pytest.mark.parametrize("setting", list(FORMS))
def test_the_form_postfixadmin_writes(setting: str, written: dict[str, str]) -> None:
    assert re.fullmatch(FORMS[setting], written[setting]), written[setting]


@pytest.mark.parametrize("setting", PFA_FORMS)
def test_postfixadmin_accepts_what_we_write(setting: str, written: dict[str, str]) -> None:
    assert postfixadmin_check(setting, PASSWORD, written[setting])
    assert not postfixadmin_check(setting, "X" + PASSWORD[1:], written[setting])


@pytest.mark.parametrize("setting", DOVEADM_FORMS)
def test_postfixadmin_dovecot_check_accepts_what_we_write(setting: str, written: dict[str, str]) -> None:
    """Its check: salted schemes through ``doveadm pw -t``, the others compared with a fresh
    ``doveadm pw -s`` output."""
    doveadm = shutil.which("doveadm")
    if doveadm is None:
        pytest.skip("doveadm (dovecot-core) not installed")
    scheme = setting.removeprefix("dovecot:").upper()
    if scheme in DETERMINISTIC:
        fresh = subprocess.run([doveadm, "pw", "-s", scheme, "-p", PASSWORD], capture_output=True, text=True,
                               timeout=30, check=True)
        assert fresh.stdout.strip() == written[setting]
        return
    test = subprocess.run([doveadm, "pw", "-t", written[setting], "-p", PASSWORD], capture_output=True, text=True,
                          timeout=30)
    assert "(verified)" in test.stdout, test.stderr


@pytest.mark.parametrize("setting", list(FORMS))
def test_our_authenticator_reads_what_we_write(setting: str, written: dict[str, str]) -> None:
    encrypt = pacrypt.parse(setting)
    assert verify_password(PASSWORD, written[setting], encrypt.unprefixed_scheme)
    assert not verify_password("X" + PASSWORD[1:], written[setting], encrypt.unprefixed_scheme)


def test_known_postfixadmin_hashes_as_checks() -> None:
    # md5crypt with the salt c9809462 (PostfixAdmin's create_salt() gives 8 hex digits)
    stored = system_crypt("test123", "$1$c9809462$")
    assert postfixadmin_check("md5crypt", "test123", stored)
    assert verify_password("test123", stored)
    # mysql_encrypt as 3.3 writes it, CONCAT('$6$', '$6$<salt>') = an empty salt
    empty_salt = system_crypt("test123", "$6$$6$abcdefghijklmnop")
    assert empty_salt.startswith("$6$$")
    assert postfixadmin_check("mysql_encrypt", "test123", empty_salt) and verify_password("test123", empty_salt)
    # system on PHP 8: DES with a 2-character salt
    des = system_crypt("test123", "Ab")
    assert postfixadmin_check("system", "test123", des) and verify_password("test123", des)


def test_unprefixed_scheme_follows_the_setting_unless_set() -> None:
    assert pacrypt.unprefixed_scheme(Settings()) == "CRYPT"
    assert pacrypt.unprefixed_scheme(Settings({"postfixadmin_encrypt": "md5"})) == "MD5"
    assert pacrypt.unprefixed_scheme(Settings({"postfixadmin_encrypt": "cleartext"})) == "PLAIN"
    explicit = Settings({"postfixadmin_encrypt": "md5", "default_pass_scheme": "PLAIN-MD5"})
    assert pacrypt.unprefixed_scheme(explicit) == "PLAIN-MD5"
    assert pacrypt.from_settings(Settings()).setting == "md5crypt"


@pytest.mark.parametrize("value", [
    "nosuch", "md5crypt:x", "dovecot:", "dovecot:DIGEST-MD5", "dovecot:PLAIN-TRUNC", "php_crypt:FOO",
    "php_crypt:SHA512:999", "php_crypt:BLOWFISH:32", "php_crypt:BLOWFISH:ten", "php_crypt:SHA512::SHA512-CRYPT",
    "php_crypt:SHA512::{MD5-CRYPT}", "php_crypt:SHA512::{NOSUCH}", "php_crypt:SHA512:5000:{CRYPT}:x",
])
def test_values_postfixadmin_or_dovecot_would_refuse(value: str) -> None:
    with pytest.raises(pacrypt.UnknownEncrypt):
        pacrypt.parse(value)
    with pytest.raises(ConfigError, match="postfixadmin_encrypt: "):
        pacrypt.from_settings(Settings({"postfixadmin_encrypt": value}))


def test_rounds_override_and_limits() -> None:
    assert pacrypt.parse("php_crypt:BLOWFISH").hash("x", rounds=4).startswith("$2y$04$")
    assert "$rounds=2000$" in pacrypt.parse("mysql_encrypt").hash("x", rounds=2000)
    with pytest.raises(InvalidRounds):
        pacrypt.parse("md5crypt").hash("x", rounds=5000)  # MD5-crypt has a fixed 1000
    with pytest.raises(InvalidRounds):
        pacrypt.parse("php_crypt:SHA512").hash("x", rounds=999)


# --- PostfixAdmin's own primitives --------------------------------------------------------------
# the checks above, in PHP with the functions PostfixAdmin calls (crypt(), md5(), hash(), base64)
PHP_CHECK = r"""
$out = [];
foreach (json_decode(stream_get_contents(STDIN), true) as [$setting, $pw, $stored]) {
    $low = strtolower($setting);
    if ($low === 'md5crypt') {
        $salt = explode('$', $stored)[2] ?? '';
        $got = crypt($pw, '$1$' . substr($salt, 0, 8) . '$');
    } elseif ($low === 'system' || $low === 'mysql_encrypt' || strncmp($low, 'php_crypt', 9) === 0) {
        preg_match('/^(\{[-A-Z0-9]+\})?(.+)$/s', $stored, $m);
        $got = $m[1] . crypt($pw, $m[2]);
    } elseif ($low === 'md5') {
        $got = md5($pw);
    } elseif ($low === 'cleartext') {
        $got = $pw;
    } elseif ($low === 'authlib') {
        $got = '{md5raw}' . md5($pw);
    } elseif ($low === 'sha512.b64' || $low === 'sha512crypt.b64') {
        $got = '{SHA512-CRYPT.B64}' . base64_encode(crypt($pw, base64_decode(substr($stored, 18), true)));
    } elseif ($low === 'courier:md5') {
        $got = '{MD5}' . base64_encode(md5($pw, true));
    } elseif ($low === 'courier:md5raw') {
        $got = '{MD5RAW}' . md5($pw);
    } elseif ($low === 'courier:sha256') {
        $got = '{SHA256}' . base64_encode(hash('sha256', $pw, true));
    } elseif ($low === 'courier:ssha') {
        $salt = substr(base64_decode(substr($stored, 6)), 20);
        $got = '{SSHA}' . base64_encode(sha1($pw . $salt, true) . $salt);
    } else {
        $got = null;
    }
    $out[] = [$setting, $got === $stored];
}
echo json_encode($out);
"""


def test_php_accepts_what_we_write(written: dict[str, str]) -> None:
    php = shutil.which("php")
    if php is None:
        if IN_CI:
            pytest.fail("php (php-cli) is required under CI=true (.ci/run installs it)")
        pytest.skip("php (php-cli) not installed")
    checked = PFA_FORMS
    cases = [[s, PASSWORD, written[s]] for s in checked] + [[s, "X" + PASSWORD[1:], written[s]] for s in checked]
    result = subprocess.run([php, "-r", PHP_CHECK], input=json.dumps(cases), capture_output=True, text=True,
                            timeout=60, check=True)
    verdicts = json.loads(result.stdout)
    assert verdicts[: len(checked)] == [[s, True] for s in checked]
    assert verdicts[len(checked):] == [[s, False] for s in checked]


@pytest.mark.mariadb
def test_mariadb_encrypt_accepts_mysql_encrypt(mariadb_url: str) -> None:
    from tests.conftest import _mariadb_admin

    stored = pacrypt.parse("mysql_encrypt").hash(PASSWORD)
    conn = _mariadb_admin()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ENCRYPT(%s, %s), ENCRYPT(%s, %s)", (PASSWORD, stored, "X" + PASSWORD[1:], stored))
            right, wrong = (bytes(v or b"").decode() for v in cur.fetchone())
            # what PostfixAdmin 3.3 itself stores: the salt ends up empty
            cur.execute("SELECT ENCRYPT(%s, CONCAT('$6$', '$6$abcdefghijklmnop'))", (PASSWORD,))
            theirs = bytes(cur.fetchone()[0] or b"").decode()
    finally:
        conn.close()
    if not right:
        pytest.skip("this MariaDB has no ENCRYPT()")
    assert right == stored and wrong != stored
    assert theirs.startswith("$6$$") and verify_password(PASSWORD, theirs)
