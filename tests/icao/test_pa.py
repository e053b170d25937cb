"""Passive Authentication: the happy paths and every failure the issue names."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from icao_pki.cms import Severity, SignerIdKind, build_signed_data
from icao_pki.masterlist import build_master_list, check_master_list, parse_master_list
from icao_pki.pa import (
    PaMode,
    PassiveAuthenticationError,
    check_pa,
    dg1_issuing_state,
    mrz_country_to_alpha2,
    verify_pa,
)
from icao_pki.sod import build_lds_security_object, build_sod, wrap_sod
from tests.icao.test_cms_pki import (
    T0,
    make_crl,
    make_csca,
    make_leaf,
    make_link,
    make_self_signed_new_csca,
    pki,
)
from tests.icao.test_sod import DATA_GROUPS, mrz_dg1
from tests.support.softsigner import SoftwareSigner

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "icao"
AT = T0 + timedelta(days=10)


def codes(result, severity: Severity | None = None) -> list[str]:
    return [f.code for f in result.findings if severity is None or f.severity is severity]


def _sod(ds=None, data_groups=None, signing_time=T0):
    ds = ds or pki().ds
    return build_sod(data_groups or DATA_GROUPS, ds_signer=ds.signer, ds_certificate=ds.der, signing_time=signing_time)


@pytest.mark.parametrize("which", ["ec", "rsa"])
def test_pa_valid_strict(which: str) -> None:
    p = pki()
    ds, csca = (p.ds, p.csca) if which == "ec" else (p.rsa_ds, p.rsa_csca)
    crl = make_crl(csca)
    result = verify_pa(_sod(ds), DATA_GROUPS, trust=[csca.der, p.foreign_csca.der], crls=[crl], at=AT, mode=PaMode.STRICT)
    assert result.valid
    assert result.data_groups_checked == [1, 2, 14, 15]
    assert result.data_groups_in_sod == [1, 2, 14, 15]
    assert result.ds_subject and "Document Signer" in result.ds_subject
    assert result.csca_subject and "CSCA Viet Nam" in result.csca_subject
    assert result.issuing_state == "VNM" and result.csca_country == "VN"
    assert result.signing_time == T0
    assert codes(result) == []


def test_pa_dg_hash_tampering_detected() -> None:
    tampered = dict(DATA_GROUPS)
    tampered[2] = DATA_GROUPS[2][:-1] + b"X"
    result = check_pa(_sod(), tampered, trust=[pki().csca.der], at=AT)
    assert not result.valid
    assert "dg-hash-mismatch" in codes(result, Severity.ERROR)
    assert 2 not in result.data_groups_checked and 1 in result.data_groups_checked
    with pytest.raises(PassiveAuthenticationError, match="DG2") as info:
        verify_pa(_sod(), tampered, trust=[pki().csca.der], at=AT)
    assert info.value.result.data_groups_checked == [1, 14, 15]


def test_pa_dg_not_in_sod() -> None:
    result = check_pa(_sod(), {**DATA_GROUPS, 11: bytes([0x6B, 1, 0])}, trust=[pki().csca.der], at=AT)
    assert "dg-not-in-sod" in codes(result, Severity.ERROR)


def test_pa_wrong_country_dg1_detected() -> None:
    """A VN CSCA signing a passport whose MRZ says FRA: the rogue-state case (gmrtd#1)."""
    dgs = {**DATA_GROUPS, 1: mrz_dg1("FRA")}
    result = check_pa(_sod(data_groups=dgs), dgs, trust=[pki().csca.der], at=AT)
    assert "issuing-state-mismatch" in codes(result, Severity.ERROR)
    assert result.issuing_state == "FRA"


def test_pa_expired_ds_pkup_detected() -> None:
    """The DS key may sign for 90 days only; a SOD signed on day 100 is refused."""
    late = T0 + timedelta(days=100)
    result = check_pa(_sod(signing_time=late), DATA_GROUPS, trust=[pki().csca.der], at=late + timedelta(days=1))
    assert "ds-pkup" in codes(result, Severity.ERROR)
    # at the limit it is fine
    ok = T0 - timedelta(days=1) + timedelta(days=90)
    assert "ds-pkup" not in codes(check_pa(_sod(signing_time=ok), DATA_GROUPS, trust=[pki().csca.der], at=ok))


def test_pa_revoked_ds_detected() -> None:
    p = pki()
    serial = p.ds.cert.serial_number
    crl = make_crl(p.csca, [serial])
    result = check_pa(_sod(), DATA_GROUPS, trust=[p.csca.der], crls=[crl], at=AT)
    assert "revoked" in codes(result, Severity.ERROR)
    # a CRL signed by somebody else is not believed
    forged = make_crl(type(p.csca)(p.foreign_csca.signer, p.csca.der), [])
    result = check_pa(_sod(), DATA_GROUPS, trust=[p.csca.der], crls=[forged], at=AT)
    assert "crl-signature" in codes(result, Severity.ERROR)
    # stale CRL: warning
    stale = make_crl(p.csca, [], this_update=T0 - timedelta(days=200), next_update=T0 - timedelta(days=110))
    assert "crl-stale" in codes(check_pa(_sod(), DATA_GROUPS, trust=[p.csca.der], crls=[stale], at=AT), Severity.WARNING)


def test_pa_no_crl_is_a_warning() -> None:
    result = check_pa(_sod(), DATA_GROUPS, trust=[pki().csca.der], at=AT, mode=PaMode.STRICT)
    assert result.valid
    assert codes(result) == ["revocation-not-checked"]


def test_pa_unknown_csca() -> None:
    result = check_pa(_sod(), DATA_GROUPS, trust=[pki().foreign_csca.der], at=AT)
    assert "csca-not-found" in codes(result, Severity.ERROR)
    assert result.csca_subject is None


def test_pa_ds_validity_and_csca_validity_at_time() -> None:
    result = check_pa(_sod(), DATA_GROUPS, trust=[pki().csca.der], at=T0 + timedelta(days=365 * 11))
    assert "ds-validity" in codes(result, Severity.ERROR)


def test_pa_through_link_certificate() -> None:
    """Old CSCA (EC) → link → new CSCA key (RSA) → DS.  With the old root trusted, the path
    goes DS → link → old root; with only the link, tolerant mode warns and strict refuses."""
    old = make_csca(SoftwareSigner.generate("secp256r1"), cn="CSCA Viet Nam")
    link = make_link(old, SoftwareSigner.generate("rsa2048"), cn="CSCA Viet Nam 2")
    ds = make_leaf(link, SoftwareSigner.generate("secp256r1"))
    sod = _sod(ds)
    result = verify_pa(sod, DATA_GROUPS, trust=[old.der, link.der], at=AT)
    assert len(result.path) == 3 and "CSCA Viet Nam 2" in result.path[1]
    assert result.csca_subject and "CSCA Viet Nam 2" not in result.csca_subject
    # new self-signed root alone also works (direct path)
    new_root = make_self_signed_new_csca(link)
    assert verify_pa(sod, DATA_GROUPS, trust=[new_root.der], at=AT).path[-1] == result.path[1]
    only_link = check_pa(sod, DATA_GROUPS, trust=[link.der], at=AT)
    assert only_link.valid and "link-as-anchor" in codes(only_link, Severity.WARNING)
    assert "link-as-anchor" in codes(check_pa(sod, DATA_GROUPS, trust=[link.der], at=AT, mode=PaMode.STRICT), Severity.ERROR)
    # a revoked link certificate (on the old CSCA's CRL) fails the path
    crl = make_crl(old, [link.cert.serial_number])
    assert "revoked" in codes(check_pa(sod, DATA_GROUPS, trust=[old.der, link.der], crls=[crl], at=AT), Severity.ERROR)


def test_pa_trust_from_master_list() -> None:
    p = pki()
    ml = parse_master_list(
        build_master_list([p.csca.der, p.foreign_csca.der], signer=p.mls.signer, signer_certificate=p.mls.der,
                          signer_csca_certificate=p.csca.der, signing_time=T0)
    )  # fmt: skip
    result = verify_pa(_sod(), DATA_GROUPS, trust=ml, at=AT)
    assert "ml-signer-self-asserted" in codes(result, Severity.WARNING)
    report = check_master_list(ml, trust_anchors=[p.csca.der], at=AT)
    assert codes(verify_pa(_sod(), DATA_GROUPS, trust=report, at=AT)) == ["revocation-not-checked"]


def test_pa_tolerant_vs_strict_id_data() -> None:
    p = pki()
    content = build_lds_security_object({n: hashlib.sha256(v).digest() for n, v in DATA_GROUPS.items()})
    ci = build_signed_data(
        content_type="1.2.840.113549.1.7.1", content=content, signer=p.ds.signer, signer_certificate=p.ds.der,
        signing_time=T0, sid=SignerIdKind.ISSUER_AND_SERIAL, certificates=[p.ds.der],
    )  # fmt: skip
    sod = wrap_sod(ci)
    tolerant = check_pa(sod, DATA_GROUPS, trust=[p.csca.der], at=AT)
    assert tolerant.valid and "sod-content-type-id-data" in codes(tolerant, Severity.WARNING)
    strict = check_pa(sod, DATA_GROUPS, trust=[p.csca.der], at=AT, mode=PaMode.STRICT)
    assert not strict.valid and "sod-content-type-id-data" in codes(strict, Severity.ERROR)


def test_pa_missing_ds_extensions_tolerant() -> None:
    p = pki()
    bare = make_leaf(p.csca, SoftwareSigner.generate("secp256r1"), pkup_days=None)
    sod = _sod(bare)
    tolerant = check_pa(sod, DATA_GROUPS, trust=[p.csca.der], at=AT)
    assert tolerant.valid and "ds-pkup-missing" in codes(tolerant, Severity.WARNING)
    assert not check_pa(sod, DATA_GROUPS, trust=[p.csca.der], at=AT, mode=PaMode.STRICT).valid


def test_pa_sod_signature_tampered() -> None:
    sod = bytearray(_sod())
    sod[-3] ^= 0xFF
    result = check_pa(bytes(sod), DATA_GROUPS, trust=[pki().csca.der], at=AT)
    assert not result.valid
    assert any(c.startswith("sod-") for c in codes(result, Severity.ERROR))


def test_pa_country_codes() -> None:
    assert mrz_country_to_alpha2("VNM") == "VN"
    assert mrz_country_to_alpha2("D<<") == "DE"
    assert mrz_country_to_alpha2("D") == "DE"
    assert mrz_country_to_alpha2("AUT") == "AT"
    assert mrz_country_to_alpha2("GBD") == "GB"
    assert mrz_country_to_alpha2("XXX") is None
    assert dg1_issuing_state(mrz_dg1("VNM")) == "VNM"


def test_pa_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        check_pa(_sod(), DATA_GROUPS, trust=[pki().csca.der], at=datetime(2026, 1, 1))


# --- real-world vectors ------------------------------------------------------------------------


def test_pa_bsi_reference_document() -> None:
    """BSI TR-03105 reference passport: SOD signature, DG1/DG14 hashes and the MRZ issuing
    state "D" are checked; its CSCA (HJP PB CS) is not public, so the path cannot be built."""
    sod = (VECTORS / "bsi_tr03105" / "EF_SOD.bin").read_bytes()
    dgs = {n: (VECTORS / "bsi_tr03105" / f"Datagroup{n}.bin").read_bytes() for n in (1, 14)}
    result = check_pa(sod, dgs, trust=[], at=datetime(2014, 6, 1, tzinfo=UTC))
    assert result.data_groups_checked == [1, 14]
    assert result.issuing_state == "D"
    assert mrz_country_to_alpha2(result.issuing_state) == "DE"
    assert codes(result, Severity.ERROR) == ["csca-not-found"]
    assert "ds-pkup-missing" in codes(result, Severity.WARNING)  # the BSI test DS has no PKUP
    # the DS certificate expired on 2014-12-11
    assert "ds-validity" in codes(check_pa(sod, dgs, trust=[], at=datetime(2015, 1, 1, tzinfo=UTC)), Severity.ERROR)


def test_pa_austrian_document_pkup_at_signing_time() -> None:
    """Austrian SOD signed 2023-03-17, DS PKUP notAfter 2023-05-06: within the window."""
    sod = (VECTORS / "gmrtd" / "AT_EF_SOD.bin").read_bytes()
    result = check_pa(sod, {}, trust=[], at=datetime(2024, 1, 1, tzinfo=UTC))
    assert result.signing_time == datetime(2023, 3, 17, 13, 40, 18, tzinfo=UTC)
    assert "ds-pkup" not in codes(result)
    assert codes(result, Severity.ERROR) == ["csca-not-found"]
    assert result.data_groups_in_sod == [1, 2, 3, 11, 12, 14]


def test_pa_german_document_without_signing_time() -> None:
    """German SOD (v1, SHA-384, brainpoolP384r1): PKUP present but no signingTime, so the
    PKUP cannot be checked — a warning, an error in strict mode."""
    sod = (VECTORS / "gmrtd" / "DE_EF_SOD.bin").read_bytes()
    result = check_pa(sod, {}, trust=[], at=datetime(2024, 1, 1, tzinfo=UTC))
    assert "signing-time-missing" in codes(result, Severity.WARNING)
    assert codes(result, Severity.ERROR) == ["csca-not-found"]
    strict = check_pa(sod, {}, trust=[], at=datetime(2024, 1, 1, tzinfo=UTC), mode=PaMode.STRICT)
    assert "signing-time-missing" in codes(strict, Severity.ERROR)


def test_pa_document_type_list() -> None:
    """The DS DocumentTypeList (2.23.136.1.1.6.2) must allow the MRZ document code."""
    p = pki()
    id_only = make_leaf(p.csca, SoftwareSigner.generate("secp256r1"), doc_types=("ID",))
    result = check_pa(_sod(id_only), DATA_GROUPS, trust=[p.csca.der], at=AT)
    assert "document-type-not-allowed" in codes(result, Severity.ERROR)
    none = make_leaf(p.csca, SoftwareSigner.generate("secp256r1"), doc_types=None)
    tolerant = check_pa(_sod(none), DATA_GROUPS, trust=[p.csca.der], at=AT)
    assert tolerant.valid and "ds-document-types-missing" in codes(tolerant, Severity.WARNING)
    strict = check_pa(_sod(none), DATA_GROUPS, trust=[p.csca.der], at=AT, mode=PaMode.STRICT)
    assert "ds-document-types-missing" in codes(strict, Severity.ERROR)
    both = make_leaf(p.csca, SoftwareSigner.generate("secp256r1"), doc_types=("P", "ID"))
    assert check_pa(_sod(both), DATA_GROUPS, trust=[p.csca.der], at=AT, mode=PaMode.STRICT).valid


def test_pa_same_name_link_certificate() -> None:
    """Key rollover without a name change: the link certificate's issuer equals its subject,
    yet the OLD key signed it — it must not be taken for a self-signed root."""
    old = make_csca(SoftwareSigner.generate("secp256r1"), cn="CSCA Viet Nam")
    link = make_link(old, SoftwareSigner.generate("secp256r1"), cn="CSCA Viet Nam")
    assert link.cert.subject == link.cert.issuer
    ds = make_leaf(link, SoftwareSigner.generate("secp256r1"))
    result = verify_pa(_sod(ds), DATA_GROUPS, trust=[old.der, link.der], at=AT, mode=PaMode.STRICT)
    assert len(result.path) == 3  # DS → link → old root
    only_link = check_pa(_sod(ds), DATA_GROUPS, trust=[link.der], at=AT)
    assert "link-as-anchor" in codes(only_link, Severity.WARNING)
