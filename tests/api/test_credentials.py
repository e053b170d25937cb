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


def _counting_scrypt(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    import hashlib

    import lifecycle_api.credentials as credentials

    calls: list[int] = []
    real = hashlib.scrypt

    def scrypt(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(credentials.hashlib, "scrypt", scrypt)
    credentials._verified.clear()
    return calls


def test_credentials_a_verified_secret_skips_scrypt_until_its_hash_changes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, secret = new_token()
    stored = hash_secret(secret, CHEAP)
    calls = _counting_scrypt(monkeypatch)
    assert verify_secret(secret, stored) and len(calls) == 1
    assert verify_secret(secret, stored) and verify_secret(secret, stored)
    assert len(calls) == 1  # remembered
    rotated = hash_secret(secret + "-new", CHEAP)
    calls.clear()
    assert not verify_secret(secret, rotated)  # another stored hash: scrypt again, and refused
    assert len(calls) == 1


def test_credentials_failures_are_never_remembered(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, secret = new_token()
    stored = hash_secret(secret, CHEAP)
    calls = _counting_scrypt(monkeypatch)
    for _ in range(3):
        assert not verify_secret(secret + "x", stored)
    assert len(calls) == 3
    assert verify_secret(secret, stored)
    assert not verify_secret(secret + "x", stored) and len(calls) == 5
