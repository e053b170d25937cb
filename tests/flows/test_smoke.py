from __future__ import annotations

import pytest

pytestmark = pytest.mark.hsm


def test_ceremonies_built(pki_sqlite) -> None:
    assert set(pki_sqlite.ceremonies) == {"passport_csca", "idcard_csca", "passport_cvca", "passport_dvca"}
