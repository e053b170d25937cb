"""The hand-written LDSSecurityObject encoder (the SOD hot path) equals asn1crypto's DER of the same structure."""

from __future__ import annotations

import pytest
from asn1crypto import algos, core

from icao_pki.signer import HashAlgorithm
from icao_pki.sod import LDSSecurityObject, LdsVersion, build_lds_security_object


def _digest_algorithm_without_parameters(hash_algorithm: HashAlgorithm) -> algos.DigestAlgorithm:
    """Parameters absent (RFC 5754 §2), as we write them; asn1crypto's own would add NULL."""
    oid = core.ObjectIdentifier(algos.DigestAlgorithmId(hash_algorithm.value).dotted).dump()
    return algos.DigestAlgorithm.load(bytes([0x30, len(oid)]) + oid)


@pytest.mark.parametrize("hash_algorithm", [HashAlgorithm.SHA256, HashAlgorithm.SHA384, HashAlgorithm.SHA512])
@pytest.mark.parametrize("lds_version", [None, LdsVersion("0108", "040000")])
@pytest.mark.parametrize("groups", [(1, 2), (1, 2, 3, 14, 15), tuple(range(1, 17))])
def test_fast_encoder_matches_asn1crypto(hash_algorithm: HashAlgorithm, lds_version: LdsVersion | None,
                                         groups: tuple[int, ...]) -> None:
    hashes = {n: hash_algorithm.digest(b"DG%d" % n) for n in reversed(groups)}  # unsorted input
    reference = {
        "version": "v1" if lds_version else "v0",
        "hash_algorithm": _digest_algorithm_without_parameters(hash_algorithm),
        "data_group_hash_values": [
            {"data_group_number": n, "data_group_hash_value": hashes[n]} for n in sorted(hashes)
        ],
    }
    if lds_version:
        reference["lds_version_info"] = {"lds_version": lds_version.lds_version,
                                         "unicode_version": lds_version.unicode_version}
    expected = LDSSecurityObject(reference).dump(force=True)
    assert build_lds_security_object(hashes, hash_algorithm, lds_version) == expected


def test_encoder_refuses_what_no_layout_fits_even_after_caching_one() -> None:
    """The layout of a DG set is cached: a hash of the wrong size for a set already laid out
    must still be refused, as must DG numbers and version strings no layout is made for."""
    from icao_pki.sod import SodBuildError

    good = {1: bytes(32), 2: bytes(32)}
    build_lds_security_object(good, HashAlgorithm.SHA256)  # lays out (1, 2) for SHA-256
    for bad, message in (
        ({1: bytes(32), 2: bytes(31)}, "DG2 hash is 31 bytes"),
        ({1: bytes(48), 2: bytes(48)}, "DG1 hash is 48 bytes"),
        ({1: bytes(32)}, "2..16"),
        ({1: bytes(32), 17: bytes(32)}, "outside 1..16"),
    ):
        with pytest.raises(SodBuildError, match=message):
            build_lds_security_object(bad, HashAlgorithm.SHA256)
    with pytest.raises(SodBuildError, match="digit strings"):
        build_lds_security_object(good, HashAlgorithm.SHA256, LdsVersion("1.8", "040000"))
