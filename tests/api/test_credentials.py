from __future__ import annotations

from lifecycle_api.credentials import hash_secret, new_token, split_token, verify_secret
from lifecycle_api.settings import ScryptParameters

CHEAP = ScryptParameters(n=2**4, r=8, p=1)


def test_credentials_round_trip_and_salted() -> None:
    token_id, secret = new_token()
    first, second = hash_secret(secret, CHEAP), hash_secret(secret, CHEAP)
    assert first != second and secret not in first
    assert verify_secret(secret, first) and verify_secret(secret, second)
    assert not verify_secret(secret + "x", first)
    assert split_token(f"{token_id}.{secret}") == (token_id, secret)


def test_credentials_malformed_hash_never_verifies() -> None:
    for stored in ("", "plain", "scrypt$1$2$3", "bcrypt$16$8$1$AAAA$BBBB", "scrypt$x$8$1$AAAA$BBBB"):
        assert not verify_secret("anything", stored)


def test_credentials_split_rejects_malformed() -> None:
    assert split_token("nodot") is None and split_token(".secret") is None and split_token("id.") is None
