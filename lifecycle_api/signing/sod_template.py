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
from icao_pki.sod import SOD_TAG, hash_constructor, unwrap_sod


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
    _st_cache: dict[datetime, tuple[bytes, bytes]] = field(default_factory=dict, compare=False, repr=False)
    _frames: dict[tuple[int, int, int], tuple[bytes, bytes, bytes]] = field(default_factory=dict, compare=False,
                                                                             repr=False)

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
        before, after = self.attribute_frame(signing_time)
        return before + hash_constructor(self.hash_algorithm)(econtent).digest() + after

    def attribute_frame(self, signing_time: datetime) -> tuple[bytes, bytes]:
        """The signed attributes before and after the messageDigest's value, for one signingTime.

        Hot path: no asn1crypto objects and no sorting per call.  The messageDigest attribute
        has a fixed length (the digest size) and signingTime one of two fixed lengths
        (UTCTime / GeneralizedTime), so the SET's header and the DER order of its three
        members are computed once per encoding of the time and cached with it; a caller
        signing many documents at one signingTime takes the frame once."""
        second = signing_time.replace(microsecond=0) if signing_time.microsecond else signing_time
        cached = self._st_cache.get(second)
        if cached is None:  # one encoding per second (signingTime has whole seconds)
            self._st_cache.clear()
            st = tlv(0x30, self._st_oid + tlv(0x31, cms_time(second).dump()))
            md_probe = self._md_prefix() + bytes(self.hash_algorithm.digest_size)
            order = sorted(((self._ct_attr, 0), (md_probe, 1), (st, 2)), key=lambda item: item[0])
            # the order depends only on lengths and OIDs (the tags and OIDs differ before any
            # digest byte), so the probe digest's value does not matter
            parts = [p for p, _ in order]
            total = sum(len(p) for p in parts)
            md_at = [i for _, i in order].index(1)
            before = _header(0x31, total) + b"".join(parts[:md_at])
            after = b"".join(parts[md_at + 1 :])
            cached = self._st_cache[second] = (before + self._md_prefix(), after)
        return cached

    def _md_prefix(self) -> bytes:
        size = self.hash_algorithm.digest_size
        return _header(0x30, len(self._md_oid) + 4 + size) + self._md_oid + _header(0x31, 2 + size) + _header(0x04, size)

    def assemble(self, econtent: bytes, signing_time: datetime, signature: bytes, attrs: bytes | None = None) -> bytes:
        """The EF.SOD; `attrs` are the signed attributes if already computed for the signature."""
        attrs = attrs or self.signed_attributes(econtent, signing_time)
        lengths = (len(econtent), len(attrs), len(signature))
        frame = self._frames.get(lengths)
        if frame is None:
            frame = self._frames[lengths] = self._frame(*lengths)
        head, middle, tail = frame
        # SignerInfo's signedAttrs are [0] IMPLICIT: the SET's bytes after its tag (in `middle`)
        return b"".join((head, econtent, middle, memoryview(attrs)[1:], tail, signature))

    def _frame(self, econtent_length: int, attrs_length: int, signature_length: int) -> tuple[bytes, bytes, bytes]:
        """The bytes of a SOD around its four variable parts, for their lengths: (up to the
        eContent, from it to the signed attributes, from them to the signature).  Why: only
        those lengths vary between the SODs of one template (a DER ECDSA signature has one of a
        few), so a personalisation line computes each DER header once, not at every SOD."""
        sig_header = _header(0x04, signature_length)
        si_body_length = len(self._si_head) + attrs_length + len(self._si_sigalg) + len(sig_header) + signature_length
        si_header = _header(0x30, si_body_length)
        signer_infos_header = _header(0x31, len(si_header) + si_body_length)
        econtent_header = _header(0x04, econtent_length)
        explicit_header = _header(0xA0, len(econtent_header) + econtent_length)
        encap_body_length = len(self._econtent_type) + len(explicit_header) + len(econtent_header) + econtent_length
        encap_header = _header(0x30, encap_body_length)
        sd_body_length = (len(self._sd_head) + len(encap_header) + encap_body_length + len(self._certificates)
                          + len(signer_infos_header) + len(si_header) + si_body_length)  # fmt: skip
        sd_header = _header(0x30, sd_body_length)
        explicit_sd = _header(0xA0, len(sd_header) + sd_body_length)
        ci_body_length = len(self._ci_type) + len(explicit_sd) + len(sd_header) + sd_body_length
        ci_header = _header(0x30, ci_body_length)
        sod_header = _header(SOD_TAG, len(ci_header) + ci_body_length)
        head = (sod_header + ci_header + self._ci_type + explicit_sd + sd_header + self._sd_head + encap_header
                + self._econtent_type + explicit_header + econtent_header)  # fmt: skip
        middle = self._certificates + signer_infos_header + si_header + self._si_head + b"\xa0"
        return head, middle, self._si_sigalg + sig_header


def _header(tag: int, length: int) -> bytes:
    """DER tag and length (definite form) for a one-byte tag."""
    if length < 0x80:
        return bytes((tag, length))
    if length < 0x100:
        return bytes((tag, 0x81, length))
    if length < 0x10000:
        return bytes((tag, 0x82, length >> 8, length & 0xFF))
    return bytes((tag, 0x83, length >> 16, (length >> 8) & 0xFF, length & 0xFF))
