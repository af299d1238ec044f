"""The system's crypt(3) (libxcrypt) through ctypes: SHA512-CRYPT and friends at C speed.

libpass's pure-Python SHA-crypt manages ~200 checks/s, too slow for IMAP clients that log in
often. ``crypt_r`` is reentrant and ctypes releases the GIL during the call, so checks running
in worker threads proceed in parallel. Returns None when the library is missing or refuses the
setting, and the caller falls back to libpass.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hmac

_CRYPT_DATA_SIZE = 32768  # sizeof(struct crypt_data) in libxcrypt


def _load() -> ctypes.CDLL | None:
    for name in ("libcrypt.so.1", ctypes.util.find_library("crypt")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            func = lib.crypt_r
        except (OSError, AttributeError):
            continue
        func.restype = ctypes.c_char_p
        func.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
        return lib
    return None


_LIB = _load()


def crypt(password: bytes, setting: str) -> str | None:
    """crypt(3) of ``password`` with ``setting`` (a full hash works as its own setting)."""
    if _LIB is None or b"\0" in password:
        return None
    data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    try:
        out = _LIB.crypt_r(password, setting.encode("ascii"), data)
    except (UnicodeEncodeError, ctypes.ArgumentError):
        return None
    if not out or out.startswith(b"*"):
        return None
    return bytes(out).decode("ascii", "replace")


def verify(password: bytes, stored: str) -> bool | None:
    """True/False when libcrypt could compute the hash, None when the caller must fall back."""
    computed = crypt(password, stored)
    if computed is None:
        return None
    return hmac.compare_digest(computed.encode(), stored.encode())
