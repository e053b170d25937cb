"""A session-wide demo organisation PKI for the lifecycle tests (software keys: tests only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from fixtures.orgpki import DemoOrgPki, IssuedCertificate, build_demo_org_pki
from tests.support.softsigner import SoftwareSigner

PKI_START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class OrgIdentity:
    """An organisation's official-use key and certificate."""

    signer: SoftwareSigner
    certificate: IssuedCertificate


@dataclass
class OrgPkiForTests:
    pki: DemoOrgPki
    identities: dict[str, OrgIdentity] = field(default_factory=dict)

    def identity(self, name: str, uid: str | None = None, *, not_before: datetime = PKI_START, years: int = 2,
                 spec: str = "secp256r1") -> OrgIdentity:
        if name not in self.identities:
            signer = SoftwareSigner.generate(spec)
            cert = self.pki.issue(signer, common_name=name, uid=uid or f"MNS:{abs(hash(name)) % 10**8:08d}",
                                  not_before=not_before, years=years)
            self.identities[name] = OrgIdentity(signer, cert)
        return self.identities[name]


def make_test_org_pki() -> OrgPkiForTests:
    return OrgPkiForTests(build_demo_org_pki(SoftwareSigner.generate("secp256r1"), SoftwareSigner.generate("secp256r1"),
                                         not_before=PKI_START))
