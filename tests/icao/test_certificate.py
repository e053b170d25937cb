"""Certificate profiles of ICAO 9303-12 Tables 5-6 as issued by icao_pki.certificate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core, keys, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from icao_pki.certificate import (
    Certificate,
    CertificateBuildError,
    CertificateDecodeError,
    CertificateVerifyError,
    LintRefusal,
    Profile,
    build_csca_link_certificate,
    build_deviation_list_signer_certificate,
    build_ds_certificate,
    build_master_list_signer_certificate,
    encode_time,
    key_identifier,
    parse_certificate,
    parse_certificates,
    random_serial,
)
from icao_pki.extensions import OID_DOCUMENT_TYPE_LIST, OID_DOCUMENT_TYPE_LIST_DRAFT
from icao_pki.names import DistinguishedName
from icao_pki.policy import DEFAULT_POLICY, DocumentType, PolicyViolation, Role, Window, add_months
from icao_pki.signature import EcPublicKey, load_spki, plain_to_der
from icao_pki.signer import HashAlgorithm, RsaPadding
from tests.icao.test_certificate_support import CRL_URL, CSCA_NAME, DS_NAME, T0, make_csca, make_ds, windows
from tests.support.softsigner import SoftwareSigner

P, ID = DocumentType.PASSPORT, DocumentType.IDCARD


class CountingSigner:
    """Wraps a signer and counts signatures: refusals must happen before any signature."""

    def __init__(self, inner: SoftwareSigner) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str):  # kind, curve, rsa_bits, public_key_info
        return getattr(self.inner, name)

    def sign(self, data: bytes, hash_algorithm: HashAlgorithm, rsa_padding: RsaPadding = RsaPadding.PKCS1V15) -> bytes:
        self.calls += 1
        return self.inner.sign(data, hash_algorithm, rsa_padding)


@pytest.fixture(scope="module")
def ds_key() -> SoftwareSigner:
    return SoftwareSigner.generate("brainpoolP256r1")


@pytest.fixture(scope="module")
def csca_bp(soft_bp256: SoftwareSigner) -> Certificate:
    return make_csca(soft_bp256)


def _ext(cert: Certificate, name: str):
    found = cert.extension(name)
    assert found is not None, f"{name} missing"
    return found


def _raw_extension(cert: Certificate, oid: str) -> x509.Extension:
    for item in cert.tbs["extensions"]:
        if item["extn_id"].dotted == oid:
            return item
    raise AssertionError(f"{oid} missing")


# --- the test's limits are the decree's ------------------------------------------------------


def test_certificate_policy_table_matches_the_issue() -> None:
    expected = {
        (P, Role.CSCA): (180, 60), (P, Role.DS): (120, 3),
        (ID, Role.CSCA): (324, 60), (ID, Role.DS): (264, 3),
    }  # fmt: skip
    for (doc, role), (cert_months, key_months) in expected.items():
        limit = DEFAULT_POLICY.limit(doc, role)
        assert (limit.certificate_validity_months, limit.key_usage_months) == (cert_months, key_months)


# --- CSCA --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_fixture", ["soft_p256", "soft_bp256", "soft_rsa2048"])
def test_certificate_csca_profile_fields(key_fixture: str, request: pytest.FixtureRequest) -> None:
    signer = request.getfixturevalue(key_fixture)
    csca = make_csca(signer)
    tbs = csca.tbs
    assert tbs["version"].native == "v3"
    assert 0 < csca.serial_number and len(tbs["serial_number"].contents) <= 20
    assert csca.issuer.dump() == csca.subject.dump()
    country = [atv for rdn in csca.subject.chosen for atv in rdn if atv["type"].native == "country_name"]
    assert len(country) == 1 and country[0]["value"].name == "printable_string" and country[0]["value"].native == "VN"
    assert csca.subject_str.startswith("C=VN, O=Ban Cơ yếu Chính phủ, OU=Passport, CN=CSCA Viet Nam")

    bc = _ext(csca, "basic_constraints")
    assert bc.critical and bc.value["ca"].native is True and bc.value["path_len_constraint"].native == 0
    ku = _ext(csca, "key_usage")
    assert ku.critical and set(ku.value.native) == {"key_cert_sign", "crl_sign"}
    assert csca.subject_key_identifier == key_identifier(load_spki(signer.public_key_info()))
    assert csca.authority_key_identifier == csca.subject_key_identifier
    assert not _ext(csca, "key_identifier").critical
    validity, pkup = windows(P, Role.CSCA)
    assert csca.validity == validity
    assert csca.private_key_usage_period == pkup
    assert not _ext(csca, "private_key_usage_period").critical
    assert csca.crl_distribution_points == [CRL_URL]
    assert csca.subject_alt_localities == ["VNM"] and csca.issuer_alt_localities == ["VNM"]
    assert csca.extension("extended_key_usage") is None
    assert csca.document_types is None
    assert csca.role_hints == {Profile.CSCA}
    csca.verify_issued_by(csca)


def test_certificate_csca_ec_key_has_explicit_parameters_with_cofactor(soft_bp256: SoftwareSigner, csca_bp: Certificate) -> None:
    spki = csca_bp.tbs["subject_public_key_info"]
    params = spki["algorithm"]["parameters"]
    assert params.name == "specified"
    spec = params.chosen
    assert spec["field_id"]["field_type"].native == "prime_field"
    assert spec["cofactor"].native == 1
    assert spec["base"].native[0] == 4 and spec["version"].native == "ecdpVer1"
    assert spki["public_key"].native[0] == 4
    key = csca_bp.public_key
    assert isinstance(key, EcPublicKey) and key.curve.name == "brainpoolP256r1"
    assert key == load_spki(soft_bp256.public_key_info())
    assert csca_bp.signature_algorithm["algorithm"].native == "sha256_ecdsa"
    assert csca_bp.signature_algorithm["parameters"].native is None  # RFC 5758: absent


class _AnySequence(core.SequenceOf):
    _child_spec = core.Any


def test_certificate_encodes_no_default_values(csca_bp: Certificate, soft_bp256: SoftwareSigner, ds_key: SoftwareSigner) -> None:
    ds = make_ds(soft_bp256, csca_bp, ds_key)
    for cert in (csca_bp, ds):
        for item in cert.tbs["extensions"]:
            fields = _AnySequence.load(item.dump())
            # critical DEFAULT FALSE: encoded only when TRUE
            assert len(fields) == (3 if item["critical"].native else 2), item["extn_id"].native
        assert cert.der == x509.Certificate.load(cert.der).dump(force=True)  # DER round trip


def test_certificate_rsa_pss_and_pkcs1(soft_rsa2048: SoftwareSigner) -> None:
    pss = make_csca(soft_rsa2048)
    params = pss.signature_algorithm["parameters"]
    assert pss.signature_algorithm["algorithm"].native == "rsassa_pss"
    assert params["hash_algorithm"]["algorithm"].native == "sha256"
    assert params["mask_gen_algorithm"]["algorithm"].native == "mgf1"
    assert params["mask_gen_algorithm"]["parameters"]["algorithm"].native == "sha256"
    assert params["salt_length"].native == 32
    pss.verify_issued_by(pss)
    v15 = make_csca(soft_rsa2048, rsa_padding=RsaPadding.PKCS1V15)
    assert v15.signature_algorithm["algorithm"].native == "sha256_rsa"
    v15.verify_issued_by(v15)


# --- DS, ML signer, DL signer ------------------------------------------------------------------


@pytest.mark.parametrize(("document_type", "code"), [(P, "P"), (ID, "ID")])
def test_certificate_ds_profile_fields(
    document_type: DocumentType, code: str, soft_bp256: SoftwareSigner, ds_key: SoftwareSigner
) -> None:
    csca = make_csca(soft_bp256, document_type)
    ds = make_ds(soft_bp256, csca, ds_key, document_type)
    assert ds.issuer.dump() == csca.subject.dump()
    assert ds.country == csca.country == "VN"
    ku = _ext(ds, "key_usage")
    assert ku.critical and set(ku.value.native) == {"digital_signature"}
    assert ds.authority_key_identifier == csca.subject_key_identifier
    assert ds.extension("basic_constraints") is None
    raw = _raw_extension(ds, OID_DOCUMENT_TYPE_LIST)
    assert raw["critical"].native is False
    assert raw["extn_value"].parsed["version"].native == "v0"
    assert ds.document_types == [code]
    assert all(item["extn_id"].dotted != OID_DOCUMENT_TYPE_LIST_DRAFT for item in ds.tbs["extensions"])
    validity, pkup = windows(document_type, Role.DS)
    assert ds.validity == validity and ds.private_key_usage_period == pkup
    assert ds.crl_distribution_points == [CRL_URL]
    assert ds.subject_alt_localities == ["VNM"]
    assert ds.public_key == load_spki(ds_key.public_key_info())
    assert ds.role_hints == {Profile.DS}
    ds.verify_issued_by(csca)


@pytest.mark.parametrize(
    ("builder", "oid", "profile"),
    [
        (build_master_list_signer_certificate, "2.23.136.1.1.3", Profile.MLS),
        (build_deviation_list_signer_certificate, "2.23.136.1.1.8", Profile.DLS),
    ],
)
def test_certificate_list_signer_profiles(builder, oid: str, profile: Profile, soft_p256: SoftwareSigner, ds_key: SoftwareSigner) -> None:
    csca = make_csca(soft_p256)
    der = builder(
        soft_p256, csca, ds_key.public_key_info(), DistinguishedName("Master List Signer"),
        validity=Window(T0, add_months(T0, 12)), document_type=P,
    )  # fmt: skip
    cert = parse_certificate(der)
    eku = _ext(cert, "extended_key_usage")
    assert eku.critical and cert.extended_key_usage == [oid]
    assert set(_ext(cert, "key_usage").value.native) == {"digital_signature"}
    assert cert.subject_key_identifier and cert.authority_key_identifier == csca.subject_key_identifier
    assert cert.role_hints == {profile}
    assert cert.signature_algorithm["algorithm"].native == "sha256_ecdsa"
    cert.verify_issued_by(csca)


# --- link certificates -------------------------------------------------------------------------


def test_certificate_link_across_algorithm_change(soft_rsa2048: SoftwareSigner, soft_bp256: SoftwareSigner) -> None:
    """RSA CSCA rolls over to brainpool: the link is signed by the OLD RSA key (EJBCA PR 500)."""
    old = make_csca(soft_rsa2048)
    rollover = T0 + timedelta(days=365 * 4)
    validity = Window(rollover, old.not_after)
    pkup = Window(rollover, add_months(rollover, 60))
    link = parse_certificate(
        build_csca_link_certificate(
            soft_rsa2048, old, soft_bp256.public_key_info(), validity=validity, private_key_usage=pkup,
            document_type=P, crl_distribution_points=[CRL_URL],
        )
    )  # fmt: skip
    new_root = make_csca(soft_bp256, validity=Window(rollover, add_months(rollover, 180)), private_key_usage=pkup)
    assert link.issuer.dump() == old.subject.dump()
    assert link.authority_key_identifier == old.subject_key_identifier
    assert link.subject_key_identifier == new_root.subject_key_identifier != old.subject_key_identifier
    assert link.public_key == new_root.public_key
    assert link.signature_algorithm["algorithm"].native == "rsassa_pss"
    assert link.tbs["subject_public_key_info"]["algorithm"]["parameters"].name == "specified"
    assert link.is_ca and link.role_hints == {Profile.CSCA_LINK}
    assert link.extension("icao_name_change") is None
    link.verify_issued_by(old)
    with pytest.raises(CertificateVerifyError):
        link.verify_issued_by(new_root.public_key)


def test_certificate_link_with_new_name_carries_name_change(soft_p256: SoftwareSigner, ds_key: SoftwareSigner) -> None:
    old = make_csca(soft_p256)
    rollover = T0 + timedelta(days=30)
    link = parse_certificate(
        build_csca_link_certificate(
            soft_p256, old, ds_key.public_key_info(), subject=DistinguishedName("CSCA Viet Nam 2"),
            validity=Window(rollover, old.not_after), private_key_usage=Window(rollover, add_months(rollover, 60)),
            document_type=P, crl_distribution_points=[CRL_URL],
        )
    )  # fmt: skip
    assert link.extension("icao_name_change") is not None and not link.extension("icao_name_change").critical
    link.verify_issued_by(old)


# --- decree limits: at the limit accepted, one day over refused -------------------------------


@pytest.mark.parametrize("document_type", [P, ID])
def test_certificate_csca_limits(document_type: DocumentType, soft_p256: SoftwareSigner) -> None:
    article = DEFAULT_POLICY.limit(document_type, Role.CSCA).article
    validity, pkup = windows(document_type, Role.CSCA)
    make_csca(soft_p256, document_type, validity=validity, private_key_usage=pkup)  # at the limit
    counting = CountingSigner(soft_p256)
    over = Window(validity.start, validity.end + timedelta(days=1))
    with pytest.raises(PolicyViolation, match=rf"^{article}: CSCA certificate validity"):
        make_csca(counting, document_type, validity=over, private_key_usage=pkup)
    with pytest.raises(PolicyViolation, match=rf"^{article}: CSCA private-key usage period"):
        make_csca(counting, document_type, private_key_usage=Window(pkup.start, pkup.end + timedelta(days=1)))
    assert counting.calls == 0, "refused certificates must never reach the signer"


@pytest.mark.parametrize("document_type", [P, ID])
def test_certificate_ds_limits(document_type: DocumentType, soft_p256: SoftwareSigner, ds_key: SoftwareSigner) -> None:
    article = DEFAULT_POLICY.limit(document_type, Role.DS).article
    csca = make_csca(soft_p256, document_type)
    validity, pkup = windows(document_type, Role.DS)
    ds = make_ds(soft_p256, csca, ds_key, document_type, validity=validity, private_key_usage=pkup)
    assert ds.not_after == validity.end and ds.private_key_usage_period == pkup
    counting = CountingSigner(soft_p256)
    with pytest.raises(PolicyViolation, match=rf"^{article}: DS certificate validity of .* exceeds"):
        make_ds(counting, csca, ds_key, document_type, validity=Window(validity.start, validity.end + timedelta(days=1)))
    with pytest.raises(PolicyViolation, match=rf"^{article}: DS private-key usage period of 3 months and 1 day exceeds 3 months"):
        make_ds(counting, csca, ds_key, document_type, private_key_usage=Window(pkup.start, pkup.end + timedelta(days=1)))
    assert counting.calls == 0


def test_certificate_ds_may_not_outlive_its_csca(soft_p256: SoftwareSigner, ds_key: SoftwareSigner) -> None:
    csca = make_csca(soft_p256, validity=Window(T0, add_months(T0, 60)), private_key_usage=Window(T0, add_months(T0, 12)))
    with pytest.raises(PolicyViolation, match="not within the issuer"):
        make_ds(soft_p256, csca, ds_key)


# --- time encoding --------------------------------------------------------------------------


def test_certificate_time_encoding_switches_in_2050() -> None:
    assert encode_time(datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)).name == "utc_time"
    assert encode_time(datetime(2050, 1, 1, tzinfo=UTC)).name == "general_time"
    with pytest.raises(CertificateBuildError):
        encode_time(datetime(2030, 1, 1))  # naive
    with pytest.raises(CertificateBuildError):
        encode_time(datetime(2030, 1, 1, 0, 0, 0, 5, tzinfo=UTC))


def test_certificate_idcard_csca_issued_now_uses_generalized_time(soft_p256: SoftwareSigner) -> None:
    csca = make_csca(soft_p256, ID)
    assert csca.not_after.year == 2053
    assert csca.tbs["validity"]["not_before"].name == "utc_time"
    assert csca.tbs["validity"]["not_after"].name == "general_time"
    assert csca.tbs["validity"]["not_after"].dump()[:1] == b"\x18"  # GeneralizedTime tag
    assert csca.tbs["validity"]["not_before"].dump()[:1] == b"\x17"  # UTCTime tag


# --- serials --------------------------------------------------------------------------------


def test_certificate_serial_is_injectable_and_bounded(soft_p256: SoftwareSigner) -> None:
    assert make_csca(soft_p256, serial_source=lambda: 0x1234).serial_number == 0x1234
    assert make_csca(soft_p256, serial_source=lambda: 2**159 - 1).serial_number == 2**159 - 1
    for bad in (0, -5, 2**159, 2**160):
        with pytest.raises(CertificateBuildError):
            make_csca(soft_p256, serial_source=lambda bad=bad: bad)
    serials = {random_serial() for _ in range(200)}
    assert len(serials) == 200 and all(0 < s < 2**159 for s in serials)


# --- refusals before signing -----------------------------------------------------------------


def test_certificate_lint_refuses_before_signing(soft_p256: SoftwareSigner, ds_key: SoftwareSigner) -> None:
    csca = make_csca(soft_p256)
    counting = CountingSigner(soft_p256)
    validity, pkup = windows(P, Role.DS)
    with pytest.raises(LintRefusal, match="country") as info:
        build_ds_certificate(
            counting, csca, ds_key.public_key_info(), DistinguishedName("DS", country="LA"), validity=validity,
            private_key_usage=pkup, document_type=P, crl_distribution_points=[CRL_URL],
        )  # fmt: skip
    assert any(f.code == "country-mismatch" for f in info.value.findings)
    assert counting.calls == 0


def test_certificate_refuses_a_signer_that_does_not_hold_the_issuer_key(
    soft_p256: SoftwareSigner, soft_bp256: SoftwareSigner, ds_key: SoftwareSigner
) -> None:
    csca = make_csca(soft_p256)
    with pytest.raises(CertificateBuildError, match="not the key of the issuer"):
        make_ds(soft_bp256, csca, ds_key)


def test_certificate_refuses_sha1(soft_p256: SoftwareSigner) -> None:
    with pytest.raises(CertificateBuildError, match="SHA-1"):
        make_csca(soft_p256, hash_algorithm=HashAlgorithm.SHA1)


def test_certificate_mrz_country_and_country_checked() -> None:
    with pytest.raises(ValueError, match="countryName"):
        DistinguishedName("x", country="vn")
    from icao_pki.names import locality_directory_name

    with pytest.raises(ValueError, match="MRZ"):
        locality_directory_name("VN")


# --- parsing and tolerant verification ----------------------------------------------------------


def test_certificate_parse_pem_der_and_bundle(csca_bp: Certificate, soft_bp256: SoftwareSigner, ds_key: SoftwareSigner) -> None:
    ds = make_ds(soft_bp256, csca_bp, ds_key)
    assert parse_certificate(csca_bp.to_pem().encode()).der == csca_bp.der
    bundle = (csca_bp.to_pem() + ds.to_pem()).encode()
    assert [c.der for c in parse_certificates(bundle)] == [csca_bp.der, ds.der]
    for garbage in (b"", b"\x30\x03\x02\x01\x01", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
        with pytest.raises(CertificateDecodeError):
            parse_certificate(garbage)


def test_certificate_verify_detects_tampering(csca_bp: Certificate, soft_bp256: SoftwareSigner, ds_key: SoftwareSigner, soft_p256: SoftwareSigner) -> None:
    ds = make_ds(soft_bp256, csca_bp, ds_key)
    tampered = bytearray(ds.der)
    index = ds.der.find(b"Document Signer 0001")
    tampered[index] ^= 1
    with pytest.raises(CertificateVerifyError):
        parse_certificate(bytes(tampered)).verify_issued_by(csca_bp)
    other = make_csca(soft_p256)
    with pytest.raises(CertificateVerifyError):
        ds.verify_issued_by(other.public_key)


def _cryptography_chain(signature_hash: hashes.HashAlgorithm) -> tuple[bytes, SoftwareSigner]:
    """A foreign-style certificate: named curve, no ICAO extensions, made by `cryptography`."""
    signer = SoftwareSigner.generate("secp384r1")
    name = cx509.Name([cx509.NameAttribute(NameOID.COUNTRY_NAME, "DE"), cx509.NameAttribute(NameOID.COMMON_NAME, "csca-germany")])
    cert = (
        cx509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.private_key.public_key())
        .serial_number(7)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=3650))
        .sign(signer.private_key, signature_hash)
    )
    return cert.public_bytes(serialization.Encoding.DER), signer


def test_certificate_verifier_tolerates_named_curves_and_plain_ecdsa(soft_bp256: SoftwareSigner, csca_bp: Certificate, ds_key: SoftwareSigner) -> None:
    der, _ = _cryptography_chain(hashes.SHA384())
    foreign = parse_certificate(der)
    assert not foreign.has_explicit_ec_parameters
    foreign.verify_issued_by(foreign)  # named secp384r1, ecdsa-with-SHA384

    # Plain r||s where DER was due (seen in LTU/HUN documents): still verifies.
    ds = make_ds(soft_bp256, csca_bp, ds_key)
    plain = soft_bp256.sign(ds.tbs_der, HashAlgorithm.SHA256)
    assert plain_to_der(plain) != plain
    sloppy = x509.Certificate(
        {"tbs_certificate": x509.TbsCertificate.load(ds.tbs_der), "signature_algorithm": ds.signature_algorithm, "signature_value": plain}
    ).dump()
    parse_certificate(sloppy).verify_issued_by(csca_bp)


def test_certificate_subject_key_accepts_public_key_objects(soft_p256: SoftwareSigner, ds_key: SoftwareSigner) -> None:
    csca = make_csca(soft_p256)
    validity, pkup = windows(P, Role.DS)
    der = build_ds_certificate(
        soft_p256, csca, load_spki(ds_key.public_key_info()), DS_NAME, validity=validity, private_key_usage=pkup,
        document_type=P, crl_distribution_points=[CRL_URL],
    )  # fmt: skip
    spki = keys.PublicKeyInfo.load(parse_certificate(der).spki_der)
    assert spki["algorithm"]["parameters"].name == "specified"
    assert CSCA_NAME.common_name == "CSCA Viet Nam"
