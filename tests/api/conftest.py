from __future__ import annotations

import pytest

from tests.api.orgpki_support import OrgPkiForTests, make_test_org_pki


@pytest.fixture(scope="session")
def org_pki() -> OrgPkiForTests:
    return make_test_org_pki()
