"""Two digests hashlib cannot give us, for password schemes only (pure functions).

* MD4 (RFC 1320) for Dovecot's PLAIN-MD4: OpenSSL 3 no longer offers it through hashlib.
* The HMAC-MD5 "CRAM-MD5 context" Dovecot stores for CRAM-MD5/HMAC-MD5: the MD5 chaining state
  after one block of ``key XOR opad`` and of ``key XOR ipad`` (RFC 2104 §2). hashlib does not expose
  MD5's intermediate state, so the one-block compression (RFC 1321 §3.4) is written out here.

Neither is used for anything but checking and writing these legacy password formats.
"""

from __future__ import annotations

import hashlib
import math
import struct

_MASK = 0xFFFFFFFF
_IV = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)  # RFC 1320 §3.3 and RFC 1321 §3.3


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK


def _pad(data: bytes) -> bytes:
    """RFC 1320 §3.1-3.2: 0x80, zeros to 56 mod 64, then the bit length little-endian."""
    return data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + struct.pack("<Q", (len(data) * 8) & (2**64 - 1))


_MD4_R2 = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
_MD4_R3 = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)


def md4(data: bytes) -> bytes:
    """The MD4 digest of ``data`` (RFC 1320)."""
    a, b, c, d = _IV
    msg = _pad(data)
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off : off + 64])
        aa, bb, cc, dd = a, b, c, d
        # Each step updates the first variable, then the names rotate (a, b, c, d) = (d, a, b, c),
        # which walks RFC 1320's [abcd] [dabc] [cdab] [bcda] pattern.
        for i in range(16):  # round 1, F(x, y, z) = xy v not(x) z
            a = _rotl((a + ((b & c) | (~b & d)) + x[i]) & _MASK, (3, 7, 11, 19)[i % 4])
            a, b, c, d = d, a, b, c
        for i in range(16):  # round 2, G(x, y, z) = xy v xz v yz
            f = (b & c) | (b & d) | (c & d)
            a = _rotl((a + f + x[_MD4_R2[i]] + 0x5A827999) & _MASK, (3, 5, 9, 13)[i % 4])
            a, b, c, d = d, a, b, c
        for i in range(16):  # round 3, H(x, y, z) = x xor y xor z
            a = _rotl((a + (b ^ c ^ d) + x[_MD4_R3[i]] + 0x6ED9EBA1) & _MASK, (3, 9, 11, 15)[i % 4])
            a, b, c, d = d, a, b, c
        a, b, c, d = (a + aa) & _MASK, (b + bb) & _MASK, (c + cc) & _MASK, (d + dd) & _MASK
    return struct.pack("<4I", a, b, c, d)


_MD5_S = (7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 + (6, 10, 15, 21) * 4
_MD5_K = tuple(int(abs(math.sin(i + 1)) * 2**32) & _MASK for i in range(64))  # RFC 1321 §3.4


def md5_compress(state: tuple[int, int, int, int], block: bytes) -> tuple[int, int, int, int]:
    """One MD5 compression of a 64-byte block into ``state`` (RFC 1321 §3.4)."""
    if len(block) != 64:
        raise ValueError("MD5 block must be 64 bytes")
    x = struct.unpack("<16I", block)
    a, b, c, d = state
    for i in range(64):
        if i < 16:
            f, g = (b & c) | (~b & d), i
        elif i < 32:
            f, g = (d & b) | (~d & c), (5 * i + 1) % 16
        elif i < 48:
            f, g = b ^ c ^ d, (3 * i + 5) % 16
        else:
            f, g = c ^ (b | (~d & _MASK)), (7 * i) % 16
        f = (f + a + _MD5_K[i] + x[g]) & _MASK
        a, d, c = d, c, b
        b = (b + _rotl(f, _MD5_S[i])) & _MASK
    return ((state[0] + a) & _MASK, (state[1] + b) & _MASK, (state[2] + c) & _MASK, (state[3] + d) & _MASK)


def cram_md5_context(secret: bytes) -> bytes:
    """Dovecot's stored CRAM-MD5 form: MD5 state after ``key^opad``, then after ``key^ipad``,
    each as four little-endian 32-bit words (32 bytes; RFC 2104 §2 for the key preparation)."""
    key = hashlib.md5(secret).digest() if len(secret) > 64 else secret
    key = key.ljust(64, b"\0")
    inner = md5_compress(_IV, bytes(k ^ 0x36 for k in key))
    outer = md5_compress(_IV, bytes(k ^ 0x5C for k in key))
    return struct.pack("<4I", *outer) + struct.pack("<4I", *inner)
