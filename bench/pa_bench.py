"""Passive Authentication and EF.SOD signing throughput, against the raw Signer on the same key.

    .venv/bin/python bench/pa_bench.py [--curve brainpoolP256r1] [--seconds 2] [--software]

Prints, for one DS key in one run:
  raw Signer.sign/s          the key store's (or software) signature rate over 100 bytes
  build_sod/s                complete EF.SOD signatures (hash DGs, signed attrs, sign, DER,
                             key-matches-certificate check, verify-after-sign)
  raw verify/s               `icao_pki.signature.verify_signature` on the DS key
  check_pa/s                 complete Passive Authentications (parse SOD, signature, PKUP,
                             DS → CSCA path, DG hashes, MRZ country)
and the ratios build_sod / raw sign and check_pa / raw verify.

The key is a SoftHSM2 key through `icao_pki.keystore` (a throwaway token in a temp dir) unless
SoftHSM2 is missing or `--software` is given; the output says which.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from icao_pki.certificate import build_csca_certificate, build_ds_certificate, parse_certificate
from icao_pki.names import DistinguishedName
from icao_pki.pa import PaMode, check_pa
from icao_pki.policy import DEFAULT_POLICY, DocumentType, Role, Window, add_months
from icao_pki.signature import load_spki, plain_to_der, verify_signature
from icao_pki.signer import HashAlgorithm, KeyKind, Signer
from icao_pki.sod import build_sod

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def _rate(fn: Callable[[], object], seconds: float) -> tuple[float, int]:
    fn()  # warm-up
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        fn()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start), count


def _hsm_signers(curve: str) -> tuple[Signer, Signer, str, Callable[[], None]]:
    from icao_pki.keystore import (
        KeyStore,
        KeyStoreConfig,
        NullAuditSink,
        PinSource,
        default_module_path,
        init_softhsm_token,
        write_softhsm_config,
    )

    if shutil.which("softhsm2-util") is None or not os.path.exists(default_module_path()):
        raise RuntimeError("SoftHSM2 not installed")
    data_dir = Path(tempfile.mkdtemp(prefix="icao-pki-bench-"))
    os.environ["SOFTHSM2_CONF"] = str(write_softhsm_config(data_dir))
    pin = secrets.token_hex(8)
    os.environ["ICAO_PKI_BENCH_PIN"] = pin
    init_softhsm_token("icao-pki-bench", pin=pin, so_pin=secrets.token_hex(8), env=dict(os.environ))
    store = KeyStore.open(
        KeyStoreConfig(token_label="icao-pki-bench", pin=PinSource(env="ICAO_PKI_BENCH_PIN")), audit=NullAuditSink()
    )
    csca = store.generate_key(store.next_label("passport", "csca"), curve)
    ds = store.generate_key(store.next_label("passport", "ds"), curve)
    return csca, ds, f"SoftHSM2 key via icao_pki.keystore ({curve})", lambda: shutil.rmtree(data_dir, ignore_errors=True)


def _software_signers(curve: str) -> tuple[Signer, Signer, str, Callable[[], None]]:
    from tests.support.softsigner import SoftwareSigner  # test-only software key

    return (
        SoftwareSigner.generate(curve),
        SoftwareSigner.generate(curve),
        f"SoftwareSigner (tests/support, `cryptography` key in process) ({curve})",
        lambda: None,
    )


def _windows(role: Role) -> tuple[Window, Window]:
    limit = DEFAULT_POLICY.limit(DocumentType.PASSPORT, role)
    return (
        Window(T0, add_months(T0, limit.certificate_validity_months)),
        Window(T0, add_months(T0, limit.key_usage_months)),
    )


def _dg(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = bytes([n]) if n < 0x80 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curve", default="brainpoolP256r1", help="key spec: brainpoolP256r1, secp256r1, rsa2048 ...")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    parser.add_argument("--software", action="store_true", help="use an in-process software key instead of SoftHSM2")
    args = parser.parse_args(argv)

    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    try:
        if args.software:
            raise RuntimeError("--software")
        csca_signer, ds_signer, where, cleanup = _hsm_signers(args.curve)
    except Exception as exc:  # SoftHSM2 missing or unusable: say so and fall back
        if str(exc) != "--software":
            print(f"note: SoftHSM2 unavailable ({exc}); falling back to a software key", file=sys.stderr)
        csca_signer, ds_signer, where, cleanup = _software_signers(args.curve)

    try:
        validity, pkup = _windows(Role.CSCA)
        csca = parse_certificate(
            build_csca_certificate(
                csca_signer, DistinguishedName("CSCA Viet Nam", organizational_unit="Passport"), validity=validity,
                private_key_usage=pkup, document_type=DocumentType.PASSPORT, crl_distribution_points=["http://pkd.example/crl"],
            )
        )  # fmt: skip
        validity, pkup = _windows(Role.DS)
        ds = parse_certificate(
            build_ds_certificate(
                csca_signer, csca, ds_signer.public_key_info(), DistinguishedName("Document Signer 0001"), validity=validity,
                private_key_usage=pkup, document_type=DocumentType.PASSPORT, crl_distribution_points=["http://pkd.example/crl"],
            )
        )  # fmt: skip
        mrz = b"P<VNMNGUYEN<<VAN<A<<<<<<<<<<<<<<<<<<<<<<<<<<C123456784VNM8001014M3001012<<<<<<<<<<<<<<04"
        data_groups = {
            1: _dg(0x61, b"\x5f\x1f" + bytes([len(mrz)]) + mrz),
            2: _dg(0x75, os.urandom(15000)),  # a face image of realistic size
            14: _dg(0x6E, os.urandom(300)),
        }
        signed_at = T0 + timedelta(days=1)
        at = T0 + timedelta(days=30)
        message = os.urandom(100)
        ds_key = load_spki(ds_signer.public_key_info())
        raw_signature = ds_signer.sign(message, HashAlgorithm.SHA256)
        fmt = "der" if ds_signer.kind is KeyKind.EC else "plain"
        signature = plain_to_der(raw_signature) if ds_signer.kind is KeyKind.EC else raw_signature

        def make_sod() -> bytes:
            return build_sod(data_groups, ds_signer=ds_signer, ds_certificate=ds.der, signing_time=signed_at)

        sod = make_sod()
        result = check_pa(sod, data_groups, trust=[csca.der], at=at, mode=PaMode.STRICT)
        if not result.valid:
            print(f"error: PA of the benchmark SOD failed: {result.findings}", file=sys.stderr)
            return 1

        raw_sign, n1 = _rate(lambda: ds_signer.sign(message, HashAlgorithm.SHA256), args.seconds)
        sod_rate, n2 = _rate(make_sod, args.seconds)
        raw_verify, n3 = _rate(
            lambda: verify_signature(ds_key, signature, message, HashAlgorithm.SHA256, ecdsa_format=fmt), args.seconds
        )
        pa_rate, n4 = _rate(lambda: check_pa(sod, data_groups, trust=[csca.der], at=at, mode=PaMode.STRICT), args.seconds)
    finally:
        cleanup()

    print(f"key: {where}")
    print(f"SOD: {len(sod)} bytes, DGs {sorted(data_groups)} ({sum(map(len, data_groups.values()))} bytes hashed)")
    print(f"{'raw Signer.sign':<22}{raw_sign:>10.1f} /s   ({n1} in {args.seconds:g} s)")
    print(f"{'build_sod':<22}{sod_rate:>10.1f} /s   ({n2})   ratio to raw sign   {sod_rate / raw_sign:6.1%}")
    print(f"{'raw verify_signature':<22}{raw_verify:>10.1f} /s   ({n3})")
    print(f"{'check_pa (strict)':<22}{pa_rate:>10.1f} /s   ({n4})   ratio to raw verify {pa_rate / raw_verify:6.1%}")
    print(f"{'check_pa / raw sign':<22}{pa_rate / raw_sign:>10.2f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
