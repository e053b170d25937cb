"""The strict half: lint findings for what ICAO 9303-12 and the decree forbid."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from asn1crypto import core, keys, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from icao_pki.certificate import Certificate, parse_certificate, sign_tbs, signature_algorithm_for
from icao_pki.extensions import OID_DOCUMENT_TYPE_LIST_DRAFT
from icao_pki.lint import Severity, check_certificate, summarize
from icao_pki.policy import DocumentType
from icao_pki.signature import build_spki, load_spki
from icao_pki.signer import RsaPadding
from tests.icao.test_certificate_support import T0, make_csca, make_ds
from tests.support.softsigner import SoftwareSigner

P, ID = DocumentType.PASSPORT, DocumentType.IDCARD


@pytest.fixture(scope="module")
def pki(soft_p256: SoftwareSigner) -> tuple[SoftwareSigner, Certificate, Certificate]:
    csca = make_csca(soft_p256)
    return soft_p256, csca, make_ds(soft_p256, csca, SoftwareSigner.generate("secp256r1"))


def _resign(signer: SoftwareSigner, cert: Certificate, change: Callable[[x509.TbsCertificate], None]) -> bytes:
    """Alter a good certificate's TBS and sign it again: the linter must see the change, not a bad signature."""
    tbs = x509.TbsCertificate.load(cert.tbs_der)
    change(tbs)
    algorithm, hash_algorithm = signature_algorithm_for(signer)
    tbs_der = tbs.dump()  # not force: keep the (mis)encodings the test planted
    signature = sign_tbs(signer, tbs_der, hash_algorithm, RsaPadding.PSS)
    return x509.Certificate(
        {"tbs_certificate": x509.TbsCertificate.load(tbs_der), "signature_algorithm": algorithm, "signature_value": signature}
    ).dump()


def _replace_extension(tbs: x509.TbsCertificate, name: str, new: x509.Extension | None) -> None:
    items = [x509.Extension.load(item.dump()) for item in tbs["extensions"] if item["extn_id"].native != name]
    if new is not None:
        items.append(new)
    tbs["extensions"] = x509.Extensions(items)


def _codes(der: bytes, role: str, doc: DocumentType = P, **kwargs) -> set[str]:
    findings = check_certificate(der, role, doc, **kwargs)
    assert all(f.citation for f in findings)
    return {f.code for f in findings if f.is_error}


def test_lint_clean_certificates_of_every_profile(pki) -> None:
    _, csca, ds = pki
    assert check_certificate(csca.der, "csca", P) == []
    assert check_certificate(ds.der, "ds", P, issuer=csca) == []
    assert check_certificate(csca.der, "csca", ID) == []  # CSCA 15 y is within the ID card's 27 y


def test_lint_wrong_role_and_wrong_document_type(pki) -> None:
    _, csca, ds = pki
    assert {"key-usage", "extension-missing", "extension-forbidden", "csca-self-issued"} <= _codes(ds.der, "csca")
    assert {"key-usage", "extension-forbidden"} <= _codes(csca.der, "ds")
    assert "document-type-list" in _codes(ds.der, "ds", ID)
    assert {"extension-missing", "extension-forbidden"} <= _codes(ds.der, "mls")  # no EKU, has DocumentTypeList


def test_lint_named_curve_is_an_error(pki) -> None:
    signer, _, ds = pki

    def named(tbs: x509.TbsCertificate) -> None:
        tbs["subject_public_key_info"] = keys.PublicKeyInfo.load(build_spki(load_spki(ds.spki_der), explicit_parameters=False))

    assert "ec-explicit-parameters" in _codes(_resign(signer, ds, named), "ds")


def test_lint_missing_cofactor_is_an_error(pki) -> None:
    signer, _, ds = pki

    def no_cofactor(tbs: x509.TbsCertificate) -> None:
        spki = keys.PublicKeyInfo.load(ds.spki_der)
        spec = spki["algorithm"]["parameters"].chosen
        spec_fields = {k: spec[k] for k in ("version", "field_id", "curve", "base", "order")}
        spki["algorithm"]["parameters"] = keys.ECDomainParameters(name="specified", value=keys.SpecifiedECDomain(spec_fields))
        tbs["subject_public_key_info"] = keys.PublicKeyInfo.load(spki.dump(force=True))

    assert "ec-cofactor" in _codes(_resign(signer, ds, no_cofactor), "ds")


def test_lint_draft_document_type_list_oid(pki) -> None:
    signer, _, ds = pki

    def draft(tbs: x509.TbsCertificate) -> None:
        value = ds.extension("icao_document_type_list").value.dump()
        raw = x509.Extension({"extn_id": OID_DOCUMENT_TYPE_LIST_DRAFT, "extn_value": core.ParsableOctetString(value)})
        _replace_extension(tbs, "icao_document_type_list", raw)

    codes = _codes(_resign(signer, ds, draft), "ds")
    assert {"document-type-list-draft-oid", "extension-missing"} <= codes


def test_lint_default_value_encoded(pki) -> None:
    signer, _, ds = pki
    skid = ds.extension("key_identifier").value

    def explicit_false(tbs: x509.TbsCertificate) -> None:
        item = x509.Extension({"extn_id": "key_identifier", "critical": True, "extn_value": core.OctetString(skid.native)})
        der = bytearray(item.dump())
        der[der.index(b"\x01\x01\xff") + 2] = 0  # critical FALSE, explicitly encoded
        _replace_extension(tbs, "key_identifier", x509.Extension.load(bytes(der)))

    assert "default-encoded" in _codes(_resign(signer, ds, explicit_false), "ds")


def test_lint_names(pki) -> None:
    signer, _, ds = pki

    def lowercase_utf8_country(tbs: x509.TbsCertificate) -> None:
        rdns = [x509.RelativeDistinguishedName.load(rdn.dump()) for rdn in tbs["subject"].chosen]
        rdns[0] = x509.RelativeDistinguishedName(
            [x509.NameTypeAndValue({"type": "country_name", "value": x509.DirectoryString(name="utf8_string", value="vn")})]
        )
        tbs["subject"] = x509.Name(name="", value=x509.RDNSequence(rdns))

    codes = _codes(_resign(signer, ds, lowercase_utf8_country), "ds")
    assert {"subject-country-type", "subject-country-value", "country-mismatch"} <= codes


def test_lint_times(pki) -> None:
    signer, _, ds = pki

    def generalized_before_2050(tbs: x509.TbsCertificate) -> None:
        tbs["validity"] = x509.Validity({"not_before": x509.Time(name="general_time", value=ds.not_before), "not_after": ds.tbs["validity"]["not_after"]})

    assert "time-encoding" in _codes(_resign(signer, ds, generalized_before_2050), "ds")


def test_lint_decree_limits_cite_the_article(pki) -> None:
    signer, _, ds = pki

    def one_day_too_long(tbs: x509.TbsCertificate) -> None:
        tbs["validity"] = x509.Validity(
            {"not_before": ds.tbs["validity"]["not_before"], "not_after": x509.Time(name="utc_time", value=ds.not_after + timedelta(days=1))}
        )

    findings = check_certificate(_resign(signer, ds, one_day_too_long), "ds", P)
    decree = [f for f in findings if f.citation == "Art. 23.1b"]
    assert decree and decree[0].is_error and "exceeds 10 years" in decree[0].message
    assert check_certificate(ds.der, "ds", ID) != []  # 'P' listed, not 'ID'


def test_lint_extension_rules(pki) -> None:
    signer, csca, ds = pki

    def path_len_one(tbs: x509.TbsCertificate) -> None:
        _replace_extension(
            tbs, "basic_constraints",
            x509.Extension({"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": True, "path_len_constraint": 1}}),
        )  # fmt: skip

    assert "basic-constraints-path-len" in _codes(_resign(signer, csca, path_len_one), "csca")

    def ku_not_critical(tbs: x509.TbsCertificate) -> None:
        _replace_extension(tbs, "key_usage", x509.Extension({"extn_id": "key_usage", "extn_value": x509.KeyUsage({"digital_signature"})}))

    assert "extension-criticality" in _codes(_resign(signer, ds, ku_not_critical), "ds")

    def no_alt_names(tbs: x509.TbsCertificate) -> None:
        _replace_extension(tbs, "subject_alt_name", None)

    assert "extension-missing" in _codes(_resign(signer, ds, no_alt_names), "ds")


def test_lint_signature_checked_when_issuer_given(pki, soft_bp256: SoftwareSigner) -> None:
    _, _, ds = pki
    other = make_csca(soft_bp256)
    assert "signature" in _codes(ds.der, "ds", issuer=other)


def test_lint_foreign_minimal_certificate_reports_without_crashing() -> None:
    key = SoftwareSigner.generate("secp256r1")
    name = cx509.Name([cx509.NameAttribute(NameOID.COUNTRY_NAME, "XX"), cx509.NameAttribute(NameOID.COMMON_NAME, "csca")])
    der = (
        cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.private_key.public_key())
        .serial_number(1).not_valid_before(T0).not_valid_after(T0 + timedelta(days=365 * 20))
        .sign(key.private_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    )  # fmt: skip
    findings = check_certificate(der, "csca", P)
    counts = summarize(findings)
    assert counts["error"] >= 5
    assert {"ec-explicit-parameters", "no-extensions", "extension-missing"} <= {f.code for f in findings}
    assert parse_certificate(der).role_hints == set()  # no extensions: no hint
    assert all(f.severity in Severity for f in findings)
    assert check_certificate(b"not a certificate", "ds", P)[0].code == "decode"
