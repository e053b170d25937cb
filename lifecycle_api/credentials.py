"""Operator and service-account credentials: bearer tokens stored as scrypt hashes.

A token is ``<token_id>.<secret>``: the id (public, indexed) finds the operator, the secret
is checked against ``scrypt$n$r$p$salt$hash`` with a constant-time comparison.  Only the
hash is stored; the token is shown once, when it is created.

A successful check is remembered for the process (`_VerifiedCache`): scrypt costs tens of
milliseconds by design, and a personalisation line posts a batch every few dozen milliseconds
with the same token, so without it the line's throughput would be halved by its own login.
What is remembered is a keyed digest of the secret *together with the stored hash it matched*:
the operator row is still read at every request, so a revoked operator or a rotated credential
(another stored hash) misses the cache and is refused at once.  Failures are never remembered,
so guessing still pays scrypt every time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from icao_pki.lru import BoundedSet

from .settings import ScryptParameters


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, params: ScryptParameters) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=params.n, r=params.r, p=params.p, dklen=32)
    return f"scrypt${params.n}${params.r}${params.p}${_b64(salt)}${_b64(digest)}"


class _VerifiedCache:
    """(stored hash, HMAC of the secret under a per-process key) pairs that scrypt accepted."""

    def __init__(self, size: int = 4096) -> None:
        self._key = secrets.token_bytes(32)
        self._pairs = BoundedSet(size)

    def _tag(self, secret: str, stored: str) -> tuple[str, bytes]:
        return stored, hmac.new(self._key, secret.encode(), hashlib.sha256).digest()

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return self._tag(*pair) in self._pairs

    def add(self, secret: str, stored: str) -> None:
        self._pairs.add(self._tag(secret, stored))

    def clear(self) -> None:
        self._pairs.clear()


_verified = _VerifiedCache()


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of `secret` against a stored hash; False for any malformed hash.

    A pair that passed before in this process passes without scrypt (module docstring)."""
    if (secret, stored) in _verified:
        return True
    if not _scrypt_matches(secret, stored):
        return False
    _verified.add(secret, stored)
    return True


def _scrypt_matches(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=2**26
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def new_token() -> tuple[str, str]:
    """(token_id, secret); the bearer token is f"{token_id}.{secret}"."""
    return secrets.token_hex(8), secrets.token_urlsafe(32)


def split_token(token: str) -> tuple[str, str] | None:
    token_id, sep, secret = token.partition(".")
    if not sep or not token_id or not secret:
        return None
    return token_id, secret
