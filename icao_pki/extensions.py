"""ICAO 9303-12 certificate extensions that asn1crypto does not know, registered once.

Why: asn1crypto decodes the RFC 5280 extensions but not ICAO's private ones, so without
this module a DS certificate's DocumentTypeList would stay an opaque OCTET STRING and the
linter could not check it.  Importing this module registers:

* ``id-icao-mrtd-security-extensions-documentTypeList`` 2.23.136.1.1.6.2
  (``DocumentTypeListSyntax ::= SEQUENCE { version INTEGER {v0(0)}, docTypeList SET OF
  PrintableString(SIZE(1..2)) }``, 9303-12 §7.1.1.3) — and NOT BouncyCastle's draft
  2.23.136.1.1.4, which we recognise only to report it;
* ``id-icao-mrtd-security-extensions-nameChange`` 2.23.136.1.1.6.1 (``NULL``), carried by
  CSCA link certificates when the CSCA's name changes;
* the extended key usages of the Master List signer (2.23.136.1.1.3) and the Deviation
  List signer (2.23.136.1.1.8).
"""

from __future__ import annotations

from asn1crypto import core, x509

OID_DOCUMENT_TYPE_LIST = "2.23.136.1.1.6.2"
OID_NAME_CHANGE = "2.23.136.1.1.6.1"
#: BouncyCastle / draft-era OID some issuers used for the document type list.  Wrong.
OID_DOCUMENT_TYPE_LIST_DRAFT = "2.23.136.1.1.4"
OID_EKU_MASTER_LIST_SIGNER = "2.23.136.1.1.3"
OID_EKU_DEVIATION_LIST_SIGNER = "2.23.136.1.1.8"

EKU_MASTER_LIST_SIGNER = "icao_master_list_signing"
EKU_DEVIATION_LIST_SIGNER = "icao_deviation_list_signing"


class DocumentTypeListVersion(core.Integer):
    _map = {0: "v0"}  # noqa: RUF012 - asn1crypto class-level spec


class SetOfDocumentTypes(core.SetOf):
    _child_spec = core.PrintableString


class DocumentTypeListSyntax(core.Sequence):
    _fields = [  # noqa: RUF012 - asn1crypto class-level spec
        ("version", DocumentTypeListVersion),
        ("doc_type_list", SetOfDocumentTypes),
    ]


def _register(id_class: type[core.ObjectIdentifier], container: type[core.Sequence], oid: str, name: str, spec: type) -> None:
    id_class._map[oid] = name
    if id_class._reverse_map is not None:  # already set up lazily by asn1crypto
        id_class._reverse_map[name] = oid
    container._oid_specs[name] = spec


def _register_eku(oid: str, name: str) -> None:
    x509.KeyPurposeId._map[oid] = name
    if x509.KeyPurposeId._reverse_map is not None:
        x509.KeyPurposeId._reverse_map[name] = oid


_register(x509.ExtensionId, x509.Extension, OID_DOCUMENT_TYPE_LIST, "icao_document_type_list", DocumentTypeListSyntax)
_register(x509.ExtensionId, x509.Extension, OID_NAME_CHANGE, "icao_name_change", core.Null)
_register(x509.ExtensionId, x509.Extension, OID_DOCUMENT_TYPE_LIST_DRAFT, "icao_document_type_list_draft", core.Any)
_register_eku(OID_EKU_MASTER_LIST_SIGNER, EKU_MASTER_LIST_SIGNER)
_register_eku(OID_EKU_DEVIATION_LIST_SIGNER, EKU_DEVIATION_LIST_SIGNER)


def document_type_list(codes: list[str]) -> DocumentTypeListSyntax:
    """DocumentTypeList value; DER sorts the SET OF (asn1crypto does it on dump)."""
    for code in codes:
        if not (1 <= len(code) <= 2) or not code.isalpha() or code != code.upper():
            raise ValueError(f"document type must be 1-2 upper-case letters, got {code!r}")
    return DocumentTypeListSyntax({"version": "v0", "doc_type_list": sorted(codes)})


def extension(name: str, value: object, critical: bool = False) -> x509.Extension:
    """One extension; ``critical`` is left out of the encoding when FALSE (DER: no defaults)."""
    fields: dict[str, object] = {"extn_id": name, "extn_value": value}
    if critical:
        fields["critical"] = True
    return x509.Extension(fields)
