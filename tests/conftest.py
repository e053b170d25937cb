"""Shared fixtures.  HSM fixtures live in tests/support/hsm.py."""

from __future__ import annotations

import pytest

from tests.support.softsigner import SoftwareSigner

pytest_plugins = ["tests.support.hsm"]


@pytest.fixture(scope="session")
def soft_p256() -> SoftwareSigner:
    return SoftwareSigner.generate("secp256r1")


@pytest.fixture(scope="session")
def soft_bp256() -> SoftwareSigner:
    return SoftwareSigner.generate("brainpoolP256r1")


@pytest.fixture(scope="session")
def soft_rsa2048() -> SoftwareSigner:
    return SoftwareSigner.generate("rsa2048")
