"""TR-03110-3 key sizes: RSA modulus 1024/1280/1536/2048/3072 bits and exponent ≤ 32 bits
(A.7.3.2), EC curves of 160…512 bits (A.7.4.2).  Builders refuse, validators report."""

from __future__ import annotations

from datetime import date
from math import gcd

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import cvc.builders
from cvc.builders import build_cvca_certificate, build_dv_certificate, build_request
from cvc.certificate import parse_certificate, parse_request
from cvc.errors import CvcBuildError, CvcValidationError
from cvc.publickey import key_size_problem
from cvc.validation import ChipState, check_chain_at, verify_chain_as_chip, verify_request
from icao_pki.curves import curve_by_name
from icao_pki.signature import EcPublicKey, RsaPublicKey
from tests.cvc.conftest import DAY0, Chain
from tests.support.softsigner import SoftwareSigner

END = date(2029, 1, 4)


def _rsa_with_exponent(bits: int, e: int) -> SoftwareSigner:
    """An RSA key with a public exponent `cryptography` will not generate (it offers 3 and 65537)."""
    base = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_numbers()
    p, q = base.p, base.q
    phi = (p - 1) * (q - 1)
    while gcd(e, phi) != 1:
        e += 2
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, p * q)
    )
    return SoftwareSigner(numbers.private_key())


@pytest.fixture(scope="module")
def rsa1152() -> SoftwareSigner:
    return SoftwareSigner.generate("rsa1152")


@pytest.fixture(scope="module")
def rsa_big_e() -> SoftwareSigner:
    return _rsa_with_exponent(1024, 2**32 + 15)


def test_key_size_problem_limits() -> None:
    n_1024 = (1 << 1023) | 1
    assert key_size_problem(RsaPublicKey(n_1024, 65537)) is None
    assert key_size_problem(RsaPublicKey(n_1024, 2**32 - 1)) is None  # exactly 32 bits
    assert "33 bits exceeds 32" in (key_size_problem(RsaPublicKey(n_1024, 2**32 + 1)) or "")
    for bits in (1024, 1280, 1536, 2048, 3072):
        assert key_size_problem(RsaPublicKey((1 << (bits - 1)) | 1, 3)) is None
    for bits in (1023, 1025, 1152, 4096):
        assert f"{bits} bits is not one of" in (key_size_problem(RsaPublicKey((1 << (bits - 1)) | 1, 3)) or "")
    for name in ("brainpoolP224r1", "secp256r1", "brainpoolP384r1", "brainpoolP512r1"):
        curve = curve_by_name(name)
        assert key_size_problem(EcPublicKey(curve, curve.generator)) is None
    p521 = curve_by_name("secp521r1")
    assert "521 bits) is outside 160…512" in (key_size_problem(EcPublicKey(p521, p521.generator)) or "")


@pytest.mark.parametrize("spec", ["rsa1024", "rsa1280"])
def test_builders_accept_listed_rsa_sizes(spec: str) -> None:
    signer = SoftwareSigner.generate(spec)
    cert = parse_certificate(
        build_cvca_certificate(signer, chr="VNCVCAK00001", effective_date=DAY0, expiration_date=END, document_type="passport")
    )
    assert cert.public_key.bits == int(spec[3:])
    assert parse_request(build_request(signer, chr="VNDVK00001")).public_key.bits == int(spec[3:])


def test_builders_refuse_unlisted_rsa_modulus(rsa1152: SoftwareSigner) -> None:
    with pytest.raises(CvcBuildError, match=r"VNCVCAK00001: RSA modulus of 1152 bits .*A\.7\.3\.2"):
        build_cvca_certificate(rsa1152, chr="VNCVCAK00001", effective_date=DAY0, expiration_date=END, document_type="passport")
    with pytest.raises(CvcBuildError, match="1152 bits"):
        build_request(rsa1152, chr="VNDVK00001")


def test_builders_refuse_long_rsa_exponent(rsa_big_e: SoftwareSigner) -> None:
    with pytest.raises(CvcBuildError, match=r"exponent of 33 bits exceeds 32 bits"):
        build_cvca_certificate(rsa_big_e, chr="VNCVCAK00001", effective_date=DAY0, expiration_date=END, document_type="passport")
    with pytest.raises(CvcBuildError, match=r"exponent of 33 bits"):
        build_request(rsa_big_e, chr="VNDVK00001")


def test_builders_refuse_secp521r1() -> None:
    signer = SoftwareSigner.generate("secp521r1")
    with pytest.raises(CvcBuildError, match=r"secp521r1 \(521 bits\) is outside 160…512 bits .*A\.7\.4\.2"):
        build_cvca_certificate(signer, chr="VNCVCAK00001", effective_date=DAY0, expiration_date=END, document_type="passport")


def test_dv_builder_refuses_request_with_long_exponent(
    rsa_chain: Chain, rsa_big_e: SoftwareSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:  # a foreign applicant's request, made without our check
        m.setattr(cvc.builders, "_require_key_size", lambda key, holder: None)
        request = build_request(rsa_big_e, chr="LADVK00009", car=rsa_chain.cvca.chr)
    with pytest.raises(CvcValidationError) as info:
        verify_request(parse_request(request))
    assert info.value.reason == "key_size"
    with pytest.raises(CvcBuildError, match=r"request LADVK00009: RSA public exponent of 33 bits"):
        build_dv_certificate(
            rsa_chain.cvca_signer,
            rsa_chain.cvca,
            request,
            domestic=True,
            effective_date=DAY0,
            expiration_date=date(2026, 4, 4),
            document_type="passport",
        )


def test_validators_report_dv_with_long_exponent(
    rsa_chain: Chain, rsa_big_e: SoftwareSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cvc.builders, "_require_key_size", lambda key, holder: None)
    dv = parse_certificate(
        build_dv_certificate(
            rsa_chain.cvca_signer,
            rsa_chain.cvca,
            build_request(rsa_big_e, chr="LADVK00009"),
            domestic=True,
            effective_date=DAY0,
            expiration_date=date(2026, 4, 4),
            document_type="passport",
        )
    )
    report = check_chain_at(rsa_chain.cvca, [dv], DAY0)
    assert [(f.reason, f.chr) for f in report.findings] == [("key_size", "LADVK00009")]
    assert "exponent of 33 bits" in report.findings[0].message
    state = ChipState.personalised([rsa_chain.cvca], DAY0)
    with pytest.raises(CvcValidationError) as info:
        verify_chain_as_chip(state, [dv])
    assert info.value.reason == "key_size"
    # the good chain under the same CVCA is still fine (the check is about the key, not the chain)
    assert check_chain_at(rsa_chain.cvca, [rsa_chain.dv, rsa_chain.terminal], DAY0).valid


def test_validators_report_trust_point_outside_sizes(rsa1152: SoftwareSigner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cvc.builders, "_require_key_size", lambda key, holder: None)
    cvca = parse_certificate(
        build_cvca_certificate(rsa1152, chr="VNCVCAK00001", effective_date=DAY0, expiration_date=END, document_type="passport")
    )
    report = check_chain_at(cvca, [], DAY0)
    assert [f.reason for f in report.findings] == ["key_size"]
    with pytest.raises(CvcValidationError, match="1152 bits") as info:
        ChipState.personalised([cvca], DAY0)
    assert info.value.reason == "key_size"
    p521 = parse_certificate(
        build_cvca_certificate(
            SoftwareSigner.generate("secp521r1"), chr="VNCVCAK00002", effective_date=DAY0, expiration_date=END, document_type="passport"
        )
    )
    assert "secp521r1" in check_chain_at(p521, [], DAY0).findings[0].message


def test_cached_key_objects_give_the_same_verdicts(bp_chain: Chain) -> None:
    """The verifier caches key objects; a cold and a warm cache must give the same verdicts."""
    from cvc.certificate import verify_ta_signature
    from icao_pki.signature import SignatureError, clear_key_cache, verify_signature

    cvca, dv = bp_chain.cvca, bp_chain.dv
    key = cvca.public_key.public_key()
    alg = cvca.public_key.algorithm
    n = len(dv.signature) // 2
    order = key.curve.n.to_bytes(n, "big")
    cases = {
        "good": (key, dv.signature, dv.body),
        "tampered body": (key, dv.signature, dv.body[:-1] + bytes([dv.body[-1] ^ 1])),
        "tampered signature": (key, dv.signature[:-1] + bytes([dv.signature[-1] ^ 1]), dv.body),
        "wrong key": (dv.public_key.public_key(key.curve), dv.signature, dv.body),
        "r = n": (key, order + dv.signature[n:], dv.body),
        "short": (key, dv.signature[:-1], dv.body),
    }
    for name, (k, sig, data) in cases.items():
        verdicts = []
        for warm in (False, True):
            if not warm:
                clear_key_cache()
            try:
                if warm:
                    verify_ta_signature(k, alg, sig, data)
                else:
                    verify_signature(k, sig, data, alg.hash, ecdsa_format="plain")
                verdicts.append(True)
            except SignatureError:
                verdicts.append(False)
        assert verdicts == [name == "good"] * 2, name
