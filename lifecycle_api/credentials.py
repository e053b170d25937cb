"""Operator and service-account credentials: bearer tokens stored as scrypt hashes.

A token is ``<token_id>.<secret>``: the id (public, indexed) finds the operator, the secret
is checked against ``scrypt$n$r$p$salt$hash`` with a constant-time comparison.  Only the
hash is stored; the token is shown once, when it is created.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from .settings import ScryptParameters


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, params: ScryptParameters) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=params.n, r=params.r, p=params.p, dklen=32)
    return f"scrypt${params.n}${params.r}${params.p}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of `secret` against a stored hash; False for any malformed hash."""
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
