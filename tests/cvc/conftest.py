"""A CVCA → DV → IS chain built with software signers (codec tests only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from cvc.builders import (
    build_authenticated_request,
    build_cvca_certificate,
    build_cvca_link_certificate,
    build_dv_certificate,
    build_request,
    build_terminal_certificate,
)
from cvc.certificate import CvCertificate, parse_certificate
from icao_pki.signer import Signer
from tests.support.softsigner import SoftwareSigner

DAY0 = date(2026, 1, 5)


@dataclass
class Chain:
    cvca_signer: Signer
    dv_signer: Signer
    is_signer: Signer
    cvca: CvCertificate
    dv: CvCertificate
    terminal: CvCertificate


def make_chain(
    cvca_signer: Signer,
    dv_signer: Signer | None = None,
    is_signer: Signer | None = None,
    *,
    spec: str | None = None,
    country: str = "VN",
    seq: int = 1,
    domestic: bool = True,
) -> Chain:
    spec = spec or (cvca_signer.curve.name if cvca_signer.curve else f"rsa{cvca_signer.rsa_bits}")
    dv_signer = dv_signer or SoftwareSigner.generate(spec)
    is_signer = is_signer or SoftwareSigner.generate(spec)
    cvca_chr = f"{country}CVCAP{seq:05d}"
    cvca = parse_certificate(
        build_cvca_certificate(
            cvca_signer, chr=cvca_chr, effective_date=DAY0, expiration_date=date(2029, 1, 4), document_type="passport"
        )
    )
    dv_req = build_authenticated_request(
        build_request(dv_signer, chr=f"{country}DVP{seq:05d}", car=cvca_chr), cvca_signer, outer_car=cvca_chr
    )
    dv = parse_certificate(
        build_dv_certificate(
            cvca_signer,
            cvca,
            dv_req,
            domestic=domestic,
            effective_date=DAY0,
            expiration_date=date(2026, 4, 4),
            document_type="passport",
        )
    )
    terminal = parse_certificate(
        build_terminal_certificate(
            dv_signer,
            dv,
            build_request(is_signer, chr=f"{country}ISP{seq:05d}"),
            effective_date=DAY0,
            expiration_date=date(2026, 2, 4),
            document_type="passport",
            rights=["read_dg3"],
        )
    )
    return Chain(cvca_signer, dv_signer, is_signer, cvca, dv, terminal)


def make_link(old: Chain, new_signer: Signer, *, seq: int = 2, effective: date = date(2026, 6, 1)) -> tuple[CvCertificate, CvCertificate]:
    new_chr = f"VNCVCAP{seq:05d}"
    new = parse_certificate(
        build_cvca_certificate(
            new_signer, chr=new_chr, effective_date=effective, expiration_date=date(2029, 5, 31), document_type="passport"
        )
    )
    link = parse_certificate(build_cvca_link_certificate(old.cvca_signer, old.cvca, new, document_type="passport"))
    return new, link


@pytest.fixture(scope="session")
def bp_chain(soft_bp256: SoftwareSigner) -> Chain:
    return make_chain(soft_bp256)


@pytest.fixture(scope="session")
def rsa_chain(soft_rsa2048: SoftwareSigner) -> Chain:
    return make_chain(soft_rsa2048, country="LA")
