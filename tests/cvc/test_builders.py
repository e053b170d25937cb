"""Builders: domain-parameter rules, rights narrowing, issuer checks and the decree's limits."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cvc.algorithms import TaAlgorithm
from cvc.builders import (
    build_authenticated_request,
    build_cvca_certificate,
    build_cvca_link_certificate,
    build_dv_certificate,
    build_request,
    build_terminal_certificate,
)
from cvc.certificate import parse_certificate, parse_cv
from cvc.chat import ChatRole
from cvc.errors import CvcBuildError, CvcPolicyViolation
from icao_pki.policy import DEFAULT_POLICY, Policy, PolicyViolation, cv_max_expiration
from tests.cvc.conftest import DAY0, Chain, make_chain
from tests.support.softsigner import SoftwareSigner


def _limit(role: str, doc: str = "passport") -> int:
    return DEFAULT_POLICY.limit(doc, role).certificate_validity_months


@pytest.mark.parametrize("doc", ["passport", "idcard"])
def test_cvca_validity_at_limit_accepted_one_day_over_refused(soft_bp256: SoftwareSigner, doc: str) -> None:
    last = cv_max_expiration(DAY0, _limit("cvca", doc))
    cert = parse_certificate(
        build_cvca_certificate(soft_bp256, chr="VNCVCAX00001", effective_date=DAY0, expiration_date=last, document_type=doc)
    )
    assert cert.expiration_date == last
    with pytest.raises(CvcPolicyViolation) as info:
        build_cvca_certificate(
            soft_bp256, chr="VNCVCAX00001", effective_date=DAY0, expiration_date=last + timedelta(days=1), document_type=doc
        )
    article = "Art. 23.2a" if doc == "passport" else "Art. 26.2a"
    assert info.value.article == article and str(info.value).startswith(article)
    assert isinstance(info.value, PolicyViolation)


@pytest.mark.parametrize("doc", ["passport", "idcard"])
def test_dv_validity_at_limit_accepted_one_day_over_refused(bp_chain: Chain, doc: str) -> None:
    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNDVX00002")
    last = cv_max_expiration(DAY0, _limit("dvca", doc))
    ok = parse_certificate(
        build_dv_certificate(
            bp_chain.cvca_signer, bp_chain.cvca, req, domestic=False, effective_date=DAY0, expiration_date=last, document_type=doc
        )
    )
    assert ok.role is ChatRole.DV_FOREIGN and ok.expiration_date == last
    with pytest.raises(CvcPolicyViolation, match=r"Art\. 2[36]\.2b: DVCA certificate validity of 3 months and 1 day exceeds 3 months"):
        build_dv_certificate(
            bp_chain.cvca_signer,
            bp_chain.cvca,
            req,
            domestic=False,
            effective_date=DAY0,
            expiration_date=last + timedelta(days=1),
            document_type=doc,
        )


@pytest.mark.parametrize("doc", ["passport", "idcard"])
def test_is_validity_at_limit_accepted_one_day_over_refused(bp_chain: Chain, doc: str) -> None:
    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNISX00002")
    last = cv_max_expiration(DAY0, _limit("is", doc))
    build_terminal_certificate(bp_chain.dv_signer, bp_chain.dv, req, effective_date=DAY0, expiration_date=last, document_type=doc)
    with pytest.raises(CvcPolicyViolation) as info:
        build_terminal_certificate(
            bp_chain.dv_signer, bp_chain.dv, req, effective_date=DAY0, expiration_date=last + timedelta(days=1), document_type=doc
        )
    assert info.value.article == ("Art. 23.2c" if doc == "passport" else "Art. 26.2c")
    assert "IS certificate validity of 1 month and 1 day exceeds 1 month" in str(info.value)


def test_deployment_policy_with_shorter_limit_is_applied(bp_chain: Chain) -> None:
    policy = Policy.with_overrides({"passport.is": {"certificate_validity_months": 1}})
    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNISX00003")
    short = Policy.with_overrides({"passport.dvca": {"certificate_validity_months": 1}})
    build_terminal_certificate(
        bp_chain.dv_signer, bp_chain.dv, req, effective_date=DAY0, expiration_date=DAY0 + timedelta(days=30),
        document_type="passport", policy=policy,
    )
    with pytest.raises(CvcPolicyViolation, match=r"Art\. 23\.2b"):
        build_dv_certificate(
            bp_chain.cvca_signer, bp_chain.cvca, req, domestic=True, effective_date=DAY0,
            expiration_date=DAY0 + timedelta(days=40), document_type="passport", policy=short,
        )


def test_child_validity_must_lie_inside_issuer(bp_chain: Chain) -> None:
    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNISX00004")
    with pytest.raises(CvcPolicyViolation, match="not within the issuer"):
        build_terminal_certificate(
            bp_chain.dv_signer, bp_chain.dv, req, effective_date=date(2026, 3, 20),
            expiration_date=date(2026, 4, 10), document_type="passport",
        )


def test_rights_are_narrowed_to_the_issuer(bp_chain: Chain) -> None:
    # the DV holds read_dg3 + read_dg4; a terminal asking for both gets both, the IS got only DG3 asked
    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNISX00005")
    full = parse_certificate(
        build_terminal_certificate(bp_chain.dv_signer, bp_chain.dv, req, effective_date=DAY0,
                                   expiration_date=DAY0 + timedelta(days=7), document_type="passport")
    )
    assert full.chat.hex == "03"
    cvca_signer = SoftwareSigner.generate("brainpoolP256r1")
    cvca = parse_certificate(
        build_cvca_certificate(cvca_signer, chr="VNCVCAN00001", effective_date=DAY0, expiration_date=date(2027, 1, 1),
                               document_type="passport", rights=["read_dg3"])
    )
    dv = parse_certificate(
        build_dv_certificate(cvca_signer, cvca, build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNDVN00001"),
                             domestic=True, effective_date=DAY0, expiration_date=DAY0 + timedelta(days=60),
                             document_type="passport", rights=["read_dg3", "read_dg4"])
    )
    assert dv.chat.hex == "81" and dv.chat.rights == ["read_dg3"]


def test_dv_and_terminal_carry_no_domain_parameters_cvca_does(bp_chain: Chain) -> None:
    assert bp_chain.cvca.public_key.has_domain_parameters
    assert not bp_chain.dv.public_key.has_domain_parameters
    assert not bp_chain.terminal.public_key.has_domain_parameters


def test_request_on_another_curve_is_refused(bp_chain: Chain) -> None:
    req = build_request(SoftwareSigner.generate("secp256r1"), chr="VNDVX00007")
    with pytest.raises(CvcBuildError, match="inherit brainpoolP256r1"):
        build_dv_certificate(bp_chain.cvca_signer, bp_chain.cvca, req, domestic=True, effective_date=DAY0,
                             expiration_date=DAY0 + timedelta(days=10), document_type="passport")


def test_request_with_bad_inner_signature_is_refused(bp_chain: Chain) -> None:
    der = bytearray(build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNDVX00008"))
    der[-1] ^= 0x01
    with pytest.raises(CvcBuildError, match="signature does not verify"):
        build_dv_certificate(bp_chain.cvca_signer, bp_chain.cvca, bytes(der), domestic=True, effective_date=DAY0,
                             expiration_date=DAY0 + timedelta(days=10), document_type="passport")


def test_signer_must_hold_the_issuer_key(bp_chain: Chain) -> None:
    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNDVX00010")
    with pytest.raises(CvcBuildError, match="not the key of issuer"):
        build_dv_certificate(bp_chain.dv_signer, bp_chain.cvca, req, domestic=True, effective_date=DAY0,
                             expiration_date=DAY0 + timedelta(days=10), document_type="passport")


def test_terminal_cannot_be_issued_by_cvca_nor_dv_by_dv(bp_chain: Chain) -> None:
    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNISX00011")
    with pytest.raises(CvcBuildError, match="issued by a DV"):
        build_terminal_certificate(bp_chain.cvca_signer, bp_chain.cvca, req, effective_date=DAY0,
                                   expiration_date=DAY0 + timedelta(days=10), document_type="passport")
    with pytest.raises(CvcBuildError, match="issued by a CVCA"):
        build_dv_certificate(bp_chain.dv_signer, bp_chain.dv, req, domestic=True, effective_date=DAY0,
                             expiration_date=DAY0 + timedelta(days=10), document_type="passport")


def test_request_car_must_name_the_issuer(bp_chain: Chain) -> None:
    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNDVX00012", car="DECVCAeID00102")
    with pytest.raises(CvcBuildError, match="names CAR DECVCAeID00102"):
        build_dv_certificate(bp_chain.cvca_signer, bp_chain.cvca, req, domestic=True, effective_date=DAY0,
                             expiration_date=DAY0 + timedelta(days=10), document_type="passport")


def test_link_is_signed_with_the_old_keys_algorithm() -> None:
    """Old CVCA RSA, new CVCA ECDSA: the link is an RSA signature (EJBCA PR 500)."""
    old = make_chain(SoftwareSigner.generate("rsa2048"))
    new_signer = SoftwareSigner.generate("brainpoolP256r1")
    new = parse_certificate(
        build_cvca_certificate(new_signer, chr="VNCVCAP00002", effective_date=date(2026, 6, 1),
                               expiration_date=date(2029, 5, 31), document_type="passport")
    )
    link = parse_certificate(build_cvca_link_certificate(old.cvca_signer, old.cvca, new, document_type="passport"))
    assert link.car == old.cvca.chr and link.chr == new.chr and link.is_link
    assert link.public_key.algorithm is TaAlgorithm.ECDSA_SHA_256
    assert link.validity == new.validity and link.chat == new.chat
    assert link.public_key.has_domain_parameters
    assert len(link.signature) == 256
    link.verify_signature(old.cvca.public_key.public_key(), old.cvca.public_key.algorithm)


def test_link_refuses_reused_chr_and_late_effective_date(bp_chain: Chain) -> None:
    signer = SoftwareSigner.generate("brainpoolP256r1")
    same = parse_certificate(build_cvca_certificate(signer, chr=bp_chain.cvca.chr, effective_date=date(2026, 6, 1),
                                                    expiration_date=date(2027, 6, 1), document_type="passport"))
    with pytest.raises(CvcBuildError, match="reuses the CHR"):
        build_cvca_link_certificate(bp_chain.cvca_signer, bp_chain.cvca, same, document_type="passport")
    late = parse_certificate(build_cvca_certificate(signer, chr="VNCVCAP00003", effective_date=date(2029, 2, 1),
                                                    expiration_date=date(2030, 1, 1), document_type="passport"))
    with pytest.raises(CvcBuildError, match="outside the old CVCA"):
        build_cvca_link_certificate(bp_chain.cvca_signer, bp_chain.cvca, late, document_type="passport")


def test_authenticated_request_outer_signature_covers_outer_car(bp_chain: Chain) -> None:
    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNDVX00013")
    auth = parse_cv(build_authenticated_request(req, bp_chain.dv_signer, outer_car=bp_chain.dv.chr))
    key = bp_chain.dv.public_key.public_key(bp_chain.cvca.public_key.curve)
    auth.verify_outer_signature(key, TaAlgorithm.ECDSA_SHA_256)  # type: ignore[union-attr]
    # the same signature does not verify over the request alone: the CAR is part of the TBS
    from cvc.certificate import AuthenticatedRequest
    from cvc.errors import CvcValidationError

    assert isinstance(auth, AuthenticatedRequest)
    tampered = AuthenticatedRequest(auth.request, auth.outer_car, auth.outer_signature, auth.request.encoded, auth.encoded)
    with pytest.raises(CvcValidationError, match="outer request signature"):
        tampered.verify_outer_signature(key, TaAlgorithm.ECDSA_SHA_256)
    with pytest.raises(CvcBuildError, match="other than the requested"):
        build_authenticated_request(req, bp_chain.dv_signer, outer_car="VNDVX00013")


def test_algorithm_kind_must_match_signer(soft_bp256: SoftwareSigner) -> None:
    with pytest.raises(CvcBuildError, match="needs an RSA key"):
        build_request(soft_bp256, chr="VNISX00014", algorithm=TaAlgorithm.RSA_PSS_SHA_256)


def test_rsa_pss_chain_builds_and_verifies() -> None:
    signer = SoftwareSigner.generate("rsa2048")
    cvca = parse_certificate(build_cvca_certificate(signer, chr="VNCVCAR00001", effective_date=DAY0,
                                                    expiration_date=date(2027, 1, 1), document_type="idcard",
                                                    algorithm=TaAlgorithm.RSA_PSS_SHA_512))
    cvca.verify_signature(cvca.public_key.public_key(), TaAlgorithm.RSA_PSS_SHA_512)
