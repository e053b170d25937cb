"""Chip-side (TR-03110-3 §2.5–2.6) and issuer-side chain validation; Terminal Authentication."""

from __future__ import annotations

import os
from datetime import date, timedelta

import pytest

from cvc.builders import build_cvca_certificate, build_request, build_terminal_certificate
from cvc.certificate import CvCertificate, encode_certificate_body, encode_signed, parse_certificate
from cvc.chat import Chat, ChatRole
from cvc.errors import CvcValidationError
from cvc.ta import compress, ta_sign, ta_verify
from cvc.validation import ChipState, check_chain_at, order_chain, verify_chain_as_chip, verify_chain_at
from tests.cvc.conftest import DAY0, Chain, make_chain, make_link
from tests.support.softsigner import SoftwareSigner


def _chip(chain: Chain, day: date = DAY0) -> ChipState:
    return ChipState.personalised([chain.cvca], day)


def test_chip_accepts_chain_and_computes_effective_authorization(bp_chain: Chain) -> None:
    result = verify_chain_as_chip(_chip(bp_chain), [bp_chain.dv, bp_chain.terminal])
    assert result.terminal is not None and result.terminal.chr == bp_chain.terminal.chr
    assert result.effective_authorization == Chat(bp_chain.terminal.chat.oid, b"\x01")
    assert result.effective_authorization.rights == ["read_dg3"]


def test_chip_rejects_expired_terminal_but_not_future_one(bp_chain: Chain) -> None:
    late = _chip(bp_chain, bp_chain.terminal.expiration_date + timedelta(days=1))
    with pytest.raises(CvcValidationError) as info:
        verify_chain_as_chip(late, [bp_chain.dv, bp_chain.terminal])
    assert info.value.reason == "expired" and info.value.chr == bp_chain.terminal.chr
    # "not yet effective" is never checked by a chip; the current date moves forward instead
    early = _chip(bp_chain, DAY0 - timedelta(days=100))
    result = verify_chain_as_chip(early, [bp_chain.dv, bp_chain.terminal])
    assert result.state.current_date == DAY0
    assert early.current_date == DAY0 - timedelta(days=100)  # immutable


def test_chip_expiry_day_itself_is_valid(bp_chain: Chain) -> None:
    verify_chain_as_chip(_chip(bp_chain, bp_chain.terminal.expiration_date), [bp_chain.dv, bp_chain.terminal])


def test_chip_rejects_terminal_signed_by_cvca(bp_chain: Chain) -> None:
    cvca = bp_chain.cvca
    term = bp_chain.terminal
    body = encode_certificate_body(car=cvca.chr, public_key=term.public_key, chr="VNISZ00001", chat=term.chat,
                                   effective_date=DAY0, expiration_date=DAY0 + timedelta(days=5))
    rogue = parse_certificate(encode_signed(body, bp_chain.cvca_signer.sign(body, cvca.public_key.algorithm.hash)))
    with pytest.raises(CvcValidationError) as info:
        verify_chain_as_chip(_chip(bp_chain), [rogue])
    assert info.value.reason == "order"
    assert any(f.reason == "order" for f in check_chain_at(cvca, [rogue], DAY0).findings)


def test_chip_rejects_unknown_trust_point_and_car_mismatch(bp_chain: Chain, rsa_chain: Chain) -> None:
    with pytest.raises(CvcValidationError) as info:
        verify_chain_as_chip(_chip(bp_chain), [rsa_chain.dv])
    assert info.value.reason == "unknown_trust_point"
    with pytest.raises(CvcValidationError) as info:
        verify_chain_as_chip(_chip(bp_chain), [bp_chain.dv, rsa_chain.terminal])
    assert info.value.reason == "car_mismatch"


def test_chip_rejects_bad_signature(bp_chain: Chain) -> None:
    bad = bytearray(bp_chain.terminal.encoded)
    bad[-3] ^= 0x40
    with pytest.raises(CvcValidationError) as info:
        verify_chain_as_chip(_chip(bp_chain), [bp_chain.dv, parse_certificate(bytes(bad))])
    assert info.value.reason == "signature"


def test_chip_accepts_expired_link_and_rolls_trust_points(bp_chain: Chain) -> None:
    new_signer = SoftwareSigner.generate("brainpoolP256r1")
    new, link = make_link(bp_chain, new_signer)
    # a second rollover: link 2 -> 3
    newer_signer = SoftwareSigner.generate("brainpoolP256r1")
    newer, link2 = make_link(Chain(new_signer, new_signer, new_signer, new, new, new), newer_signer, seq=3,
                             effective=date(2027, 6, 1))
    far_future = date(2031, 1, 1)  # both links long expired on the chip's date
    chip = ChipState(_chip(bp_chain).trust_points, far_future)
    result = verify_chain_as_chip(chip, [link, link2])
    assert [p.chr for p in result.state.trust_points] == [newer.chr, new.chr]  # at most two, oldest dropped
    assert result.state.current_date == far_future
    # a fresh chip: date advances to the link's effective date
    fresh = verify_chain_as_chip(_chip(bp_chain), [link])
    assert fresh.state.current_date == link.effective_date
    # a DV hanging from the new trust point, and an expired one refused
    from cvc.builders import build_dv_certificate

    dv_signer = SoftwareSigner.generate("brainpoolP256r1")
    at = link.effective_date
    dv = parse_certificate(build_dv_certificate(new_signer, new, build_request(dv_signer, chr="VNDVP00022"), domestic=True,
                                                effective_date=at, expiration_date=at + timedelta(days=60),
                                                document_type="passport"))
    assert verify_chain_as_chip(fresh.state, [dv]).state.current_date == at
    stale = make_chain(new_signer, spec="brainpoolP256r1", seq=2)  # same CVCA key, DV expired 2026-04-04
    with pytest.raises(CvcValidationError, match="expired on 2026-04-04"):
        verify_chain_as_chip(fresh.state, [stale.dv])


def test_only_accurate_terminals_move_the_chip_date() -> None:
    """By default only an official domestic DV moves the date (issue 3); a terminal only when its
    DV is official domestic (accurate).  `foreign_dv_moves_date=True` is TR-03110-3 §2.5's wording."""
    from cvc.builders import build_terminal_certificate

    foreign = make_chain(SoftwareSigner.generate("brainpoolP256r1"), domestic=False, seq=7)
    later = parse_certificate(build_terminal_certificate(
        foreign.dv_signer, foreign.dv, build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNISP00078"),
        effective_date=DAY0 + timedelta(days=5), expiration_date=DAY0 + timedelta(days=20), document_type="passport"))
    lenient = ChipState.personalised([foreign.cvca], DAY0 - timedelta(days=30), foreign_dv_moves_date=True)
    result = verify_chain_as_chip(lenient, [foreign.dv, later])
    assert result.state.current_date == DAY0  # the DV moved it, the foreign DV's terminal did not
    strict = ChipState.personalised([foreign.cvca], DAY0 - timedelta(days=30))
    assert not strict.foreign_dv_moves_date
    assert verify_chain_as_chip(strict, [foreign.dv, later]).state.current_date == strict.current_date
    domestic = make_chain(foreign.cvca_signer, domestic=True, seq=7)
    accurate = parse_certificate(build_terminal_certificate(
        domestic.dv_signer, domestic.dv, build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNISP00079"),
        effective_date=DAY0 + timedelta(days=5), expiration_date=DAY0 + timedelta(days=20), document_type="passport"))
    assert verify_chain_as_chip(strict, [domestic.dv, accurate]).state.current_date == DAY0 + timedelta(days=5)


def test_issuer_side_valid_chain_and_time_t(bp_chain: Chain) -> None:
    report = verify_chain_at(bp_chain.cvca, [bp_chain.dv, bp_chain.terminal], DAY0)
    assert report.valid and report.terminal is not None
    after = check_chain_at(bp_chain.cvca, [bp_chain.dv, bp_chain.terminal], bp_chain.terminal.expiration_date + timedelta(days=1))
    assert [f.reason for f in after.findings] == ["expired"]
    before = check_chain_at(bp_chain.cvca, [bp_chain.dv, bp_chain.terminal], DAY0 - timedelta(days=1))
    assert {f.reason for f in before.findings} == {"not_yet_valid"}


def test_issuer_side_flags_rights_nesting_and_domain_parameters(bp_chain: Chain) -> None:
    cvca, dv = bp_chain.cvca, bp_chain.dv
    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNISY00001")
    good = parse_certificate(build_terminal_certificate(bp_chain.dv_signer, dv, req, effective_date=DAY0,
                                                        expiration_date=DAY0 + timedelta(days=3), document_type="passport"))

    def forge(**changes: object) -> CvCertificate:
        fields = dict(car=good.car, public_key=good.public_key, chr=good.chr, chat=good.chat,
                      effective_date=good.effective_date, expiration_date=good.expiration_date)
        fields.update(changes)
        body = encode_certificate_body(**fields)  # type: ignore[arg-type]
        return parse_certificate(encode_signed(body, bp_chain.dv_signer.sign(body, dv.public_key.algorithm.hash)))

    wide = forge(chat=Chat(good.chat.oid, b"\x3f"))
    assert "rights" in {f.reason for f in check_chain_at(cvca, [dv, wide], DAY0).findings}
    long = forge(expiration_date=dv.expiration_date + timedelta(days=1))
    assert "nesting" in {f.reason for f in check_chain_at(cvca, [dv, long], DAY0).findings}
    with_dp = forge(public_key=parse_certificate(build_cvca_certificate(
        bp_chain.is_signer, chr="VNXX00001", effective_date=DAY0, expiration_date=DAY0, document_type="passport")).public_key)
    assert "domain_parameters" in {f.reason for f in check_chain_at(cvca, [dv, with_dp], DAY0).findings}
    with pytest.raises(CvcValidationError):
        verify_chain_at(cvca, [dv, wide], DAY0)


def test_issuer_side_chain_through_link(bp_chain: Chain) -> None:
    new_signer = SoftwareSigner.generate("brainpoolP256r1")
    new, link = make_link(bp_chain, new_signer, seq=4)
    below = make_chain(new_signer, spec="brainpoolP256r1", seq=4)
    at = date(2026, 6, 15)
    # DV of the new generation must lie inside the new CVCA's validity: build one that does
    from cvc.builders import build_dv_certificate

    dv = parse_certificate(build_dv_certificate(new_signer, new, build_request(SoftwareSigner.generate("brainpoolP256r1"),
                                                                               chr="VNDVP00044"),
                                                domestic=True, effective_date=at, expiration_date=at + timedelta(days=30),
                                                document_type="passport"))
    assert verify_chain_at(bp_chain.cvca, [link, dv], at).valid
    assert order_chain(bp_chain.cvca, [dv, link]) == [link, dv]
    del below


def test_terminal_authentication_round_trip(bp_chain: Chain, rsa_chain: Chain) -> None:
    for chain in (bp_chain, rsa_chain):
        result = verify_chain_as_chip(_chip(chain), [chain.dv, chain.terminal])
        assert result.terminal is not None
        eph = SoftwareSigner.generate("brainpoolP256r1").private_key.public_key()
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        point = eph.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        id_icc, r_icc = os.urandom(32), os.urandom(8)
        sig = ta_sign(chain.is_signer, chain.terminal.public_key.algorithm, id_icc=id_icc, r_icc=r_icc,
                      ephemeral_pcd_public_key=point)
        ta_verify(result.terminal, sig, id_icc=id_icc, r_icc=r_icc, ephemeral_pcd_public_key=point)
        assert compress(point) == point[1:33]
        with pytest.raises(CvcValidationError) as info:
            ta_verify(result.terminal, sig, id_icc=id_icc, r_icc=bytes(8), ephemeral_pcd_public_key=point)
        assert info.value.reason == "ta_signature"
        with pytest.raises(CvcValidationError):
            ta_verify(result.terminal, sig, id_icc=id_icc, r_icc=r_icc, ephemeral_pcd_public_key=point, auxiliary_data=b"\x67\x00")


def test_roles_of_chain(bp_chain: Chain) -> None:
    assert [c.role for c in (bp_chain.cvca, bp_chain.dv, bp_chain.terminal)] == [
        ChatRole.CVCA, ChatRole.DV_DOMESTIC, ChatRole.TERMINAL,
    ]


def test_signature_cache_remembers_only_successes(bp_chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    import cvc.certificate as certificate

    calls: list[bytes] = []
    real = certificate.verify_ta_signature

    def counting(key, algorithm, signature, data):  # type: ignore[no-untyped-def]
        calls.append(data)
        return real(key, algorithm, signature, data)

    monkeypatch.setattr(certificate, "verify_ta_signature", counting)
    cache = certificate.SIGNATURE_CACHE
    cache.clear()
    key, alg = bp_chain.cvca.public_key.public_key(), bp_chain.cvca.public_key.algorithm
    bp_chain.dv.verify_signature(key, alg)
    bp_chain.dv.verify_signature(key, alg)
    assert len(calls) == 1  # second time answered from the cache
    bad = bytearray(bp_chain.dv.encoded)
    bad[-1] ^= 1
    forged = parse_certificate(bytes(bad))
    for _ in range(2):
        with pytest.raises(CvcValidationError):
            forged.verify_signature(key, alg)
    assert len(calls) == 3  # failures are never remembered
    # another key for the same bytes is a different entry
    other = bp_chain.dv.public_key.public_key(key.curve)
    with pytest.raises(CvcValidationError):
        bp_chain.dv.verify_signature(other, alg)
    cache.enabled = False
    try:
        bp_chain.dv.verify_signature(key, alg)
        assert len(calls) == 5
    finally:
        cache.enabled = True
    small = certificate.VerifiedSignatureCache(size=2)
    for i in range(3):
        small.add(bytes([i]))
    assert bytes([0]) not in small and bytes([2]) in small


def test_verify_request_inner_and_outer(bp_chain: Chain) -> None:
    from cvc.algorithms import TaAlgorithm
    from cvc.builders import build_authenticated_request
    from cvc.certificate import parse_request
    from cvc.validation import verify_request

    req = build_request(SoftwareSigner.generate("brainpoolP256r1"), chr="VNDVQ00001", car=bp_chain.cvca.chr)
    inner = verify_request(parse_request(req))
    assert inner.chr == "VNDVQ00001"
    auth = parse_request(build_authenticated_request(req, bp_chain.cvca_signer, outer_car=bp_chain.cvca.chr))
    cvca_key = bp_chain.cvca.public_key.public_key()
    assert verify_request(auth, outer_key=cvca_key, outer_algorithm=TaAlgorithm.ECDSA_SHA_256).chr == "VNDVQ00001"
    dv_key = bp_chain.dv.public_key.public_key(cvca_key.curve)
    with pytest.raises(CvcValidationError) as info:
        verify_request(auth, outer_key=dv_key, outer_algorithm=TaAlgorithm.ECDSA_SHA_256)
    assert info.value.reason == "signature"
