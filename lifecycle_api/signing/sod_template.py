"""The fast path of EF.SOD assembly, derived from — and checked against — `icao_pki.sod.build_sod`.

Why: `build_sod` builds the CMS structure with asn1crypto objects, about 2 ms per SOD, while
a SoftHSM2 P-256 signature takes about 0.08 ms; a personalisation line would spend 95 % of
its time in Python object building.  For one DS key and certificate, every SOD differs only
in the LDSSecurityObject, its messageDigest, the signingTime and the signature; the rest
(digest algorithms, certificate, signer identifier, algorithms, contentType attribute) is
byte-for-byte constant.

So the first SOD of every lease is built by `build_sod` (the reference builder, which also
checks that the HSM key is the certificate's key and verifies the signature); its constant
parts are cut out of the parsed result, and the template must reassemble that very SOD
byte-for-byte from its variable parts before it is used (`SodTemplate.from_reference`
returns None otherwise, and the service keeps using `build_sod`).  The signed attributes are
DER-sorted (SET OF) exactly as asn1crypto's ``dump(force=True)`` sorts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import algos, cms

from icao_pki.cms import cms_time, tlv
from icao_pki.signer import HashAlgorithm
from icao_pki.sod import unwrap_sod, wrap_sod


@dataclass(frozen=True)
class SodTemplate:
    hash_algorithm: HashAlgorithm
    signature_algorithm: algos.SignedDigestAlgorithm
    _ci_type: bytes
    _sd_head: bytes  # version + digestAlgorithms
    _econtent_type: bytes
    _certificates: bytes
    _si_head: bytes  # version + sid + digestAlgorithm
    _si_sigalg: bytes
    _ct_attr: bytes
    _md_oid: bytes
    _st_oid: bytes
    _st_cache: dict[datetime, bytes] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_reference(cls, sod: bytes, hash_algorithm: HashAlgorithm) -> SodTemplate | None:
        """Cut the constant parts out of a SOD made by `build_sod`; None if it cannot be reproduced."""
        try:
            content_info, _ = unwrap_sod(sod)
            ci = cms.ContentInfo.load(content_info)
            sd = ci["content"]
            [si] = list(sd["signer_infos"])
            attrs = {a["type"].native: a for a in si["signed_attrs"]}
            if set(attrs) != {"content_type", "message_digest", "signing_time"} or sd["crls"].native is not None:
                return None
            template = cls(
                hash_algorithm=hash_algorithm,
                signature_algorithm=si["signature_algorithm"],
                _ci_type=ci["content_type"].dump(),
                _sd_head=sd["version"].dump() + sd["digest_algorithms"].dump(),
                _econtent_type=sd["encap_content_info"]["content_type"].dump(),
                _certificates=sd["certificates"].dump(),
                _si_head=si["version"].dump() + si["sid"].dump() + si["digest_algorithm"].dump(),
                _si_sigalg=si["signature_algorithm"].dump(),
                _ct_attr=attrs["content_type"].dump(),
                _md_oid=attrs["message_digest"]["type"].dump(),
                _st_oid=attrs["signing_time"]["type"].dump(),
            )
            econtent = sd["encap_content_info"]["content"].contents
            signing_time = attrs["signing_time"]["values"][0].native
            signature = si["signature"].native
            if template.assemble(econtent, signing_time, signature) != sod:
                return None
            return template
        except (ValueError, TypeError, KeyError):
            return None

    def signed_attributes(self, econtent: bytes, signing_time: datetime) -> bytes:
        """The DER SET OF signed attributes — exactly the bytes the signature covers."""
        md = tlv(0x30, self._md_oid + tlv(0x31, tlv(0x04, self.hash_algorithm.digest(econtent))))
        second = signing_time.replace(microsecond=0)
        st = self._st_cache.get(second)
        if st is None:  # one encoding per second (signingTime has whole seconds)
            self._st_cache.clear()
            st = self._st_cache[second] = tlv(0x30, self._st_oid + tlv(0x31, cms_time(second).dump()))
        return tlv(0x31, b"".join(sorted((self._ct_attr, md, st))))

    def assemble(self, econtent: bytes, signing_time: datetime, signature: bytes, attrs: bytes | None = None) -> bytes:
        """The EF.SOD; `attrs` are the signed attributes if already computed for the signature."""
        attrs = attrs or self.signed_attributes(econtent, signing_time)
        signer_info = tlv(0x30, self._si_head + b"\xa0" + attrs[1:] + self._si_sigalg + tlv(0x04, signature))
        encap = tlv(0x30, self._econtent_type + tlv(0xA0, tlv(0x04, econtent)))
        signed_data = tlv(0x30, self._sd_head + encap + self._certificates + tlv(0x31, signer_info))
        return wrap_sod(tlv(0x30, self._ci_type + tlv(0xA0, signed_data)))
