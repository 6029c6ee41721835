"""The menu password: a salted scrypt hash (RFC 7914) in the settings, checked by the daemon.

Format (passlib's scrypt notation): `$scrypt$ln=14,r=8,p=1$<salt>$<key>`, salt and key in unpadded standard base64,
N = 2**ln. `bootmenu passwd` writes it with hashlib.scrypt; the daemon verifies with hashlib.scrypt when this Python
has it (built with OpenSSL) and otherwise with libsodium's crypto_pwhash_scryptsalsa208sha256_ll, the same function
(RFC 7914 scrypt with Salsa20/8). The payload ships libsodium (about 0.35 MiB) instead of OpenSSL's libcrypto and
_hashlib (about 5 MiB), which it would need for nothing else.

Parameters are bounded (ln <= MAX_LN, r <= MAX_R, p <= MAX_P) so that a settings file cannot make one check take
gigabytes or minutes. The hash is a secret too (it allows offline guessing): it never goes into a log line or a
protocol message; `Settings.to_json` says only whether one is set.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import functools
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

PREFIX = "$scrypt$"
DEFAULT_LN = 14  # N = 16384: 16 MiB with r = 8; tens of ms with OpenSSL on a server, about a second under QEMU TCG
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_LN, MAX_R, MAX_P = 20, 16, 4
MAX_PASSWORD = 1024  # bytes; longer answers are refused before any hashing
_FORMAT = re.compile(
    r"^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,88})\$([A-Za-z0-9+/]{32,88})$"
)


class PasswordError(ValueError):
    """A malformed hash (the message never quotes it), or no scrypt implementation available."""


@dataclass(frozen=True, repr=False)
class PasswordHash:
    ln: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        match = _FORMAT.match(text.strip())
        if match is None:
            raise PasswordError("not a password hash from `bootmenu passwd` ($scrypt$ln=..,r=..,p=..$salt$key)")
        ln, r, p = int(match[1]), int(match[2]), int(match[3])
        if not (1 <= ln <= MAX_LN and 1 <= r <= MAX_R and 1 <= p <= MAX_P):
            raise PasswordError(f"scrypt parameters out of range (ln 1..{MAX_LN}, r 1..{MAX_R}, p 1..{MAX_P})")
        return cls(ln, r, p, _b64decode(match[4]), _b64decode(match[5]))

    @classmethod
    def locked(cls) -> PasswordHash:
        """A hash no password matches: what a malformed setting becomes (fail closed)."""
        return cls(DEFAULT_LN, DEFAULT_R, DEFAULT_P, b"", b"")

    def encode(self) -> str:
        return f"{PREFIX}ln={self.ln},r={self.r},p={self.p}${_b64encode(self.salt)}${_b64encode(self.key)}"

    def matches(self, password: str) -> bool:
        raw = password.encode()
        if len(raw) > MAX_PASSWORD or not self.key:
            return False
        key = scrypt(raw, self.salt, n=1 << self.ln, r=self.r, p=self.p, dklen=len(self.key))
        return hmac.compare_digest(key, self.key)

    def __repr__(self) -> str:  # never the salt or key, whatever logs it
        return f"PasswordHash(ln={self.ln}, r={self.r}, p={self.p})"


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def make(password: str, *, ln: int = DEFAULT_LN, salt: bytes | None = None) -> str:
    """A new hash of `password` with a random salt (the `bootmenu passwd` output)."""
    raw = password.encode()
    if not raw:
        raise PasswordError("the password is empty")
    if len(raw) > MAX_PASSWORD:
        raise PasswordError(f"the password is longer than {MAX_PASSWORD} bytes")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    key = scrypt(raw, salt, n=1 << ln, r=DEFAULT_R, p=DEFAULT_P, dklen=KEY_BYTES)
    return PasswordHash(ln, DEFAULT_R, DEFAULT_P, salt, key).encode()


# --- scrypt: hashlib (OpenSSL) or libsodium ---


def _maxmem(n: int, r: int, p: int) -> int:
    return 128 * r * (n + p + 2) + (1 << 20)


def _hashlib_scrypt(password: bytes, salt: bytes, *, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_maxmem(n, r, p))


@functools.cache
def _sodium() -> ctypes.CDLL | None:
    for name in ("libsodium.so.23", ctypes.util.find_library("sodium")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if lib.sodium_init() < 0:
            continue
        fn = lib.crypto_pwhash_scryptsalsa208sha256_ll
        fn.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
            ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t,
        ]  # fmt: skip
        fn.restype = ctypes.c_int
        return lib
    return None


def _sodium_scrypt(password: bytes, salt: bytes, *, n: int, r: int, p: int, dklen: int) -> bytes:
    lib = _sodium()
    if lib is None:
        raise PasswordError("no scrypt: this Python's hashlib lacks OpenSSL and libsodium.so.23 is not installed")
    out = ctypes.create_string_buffer(dklen)
    rc = lib.crypto_pwhash_scryptsalsa208sha256_ll(password, len(password), salt, len(salt), n, r, p, out, dklen)
    if rc != 0:
        raise PasswordError(f"crypto_pwhash_scryptsalsa208sha256_ll(N={n}, r={r}, p={p}) failed (out of memory?)")
    return out.raw


def implementation() -> Callable[..., bytes]:
    return _hashlib_scrypt if hasattr(hashlib, "scrypt") else _sodium_scrypt


def scrypt(password: bytes, salt: bytes, *, n: int, r: int, p: int, dklen: int) -> bytes:
    return implementation()(password, salt, n=n, r=r, p=p, dklen=dklen)
