"""DS signing throughput: raw PKCS#11, the in-process service with exact counting, the HTTP API.

    .venv/bin/python bench/sign_bench.py [--seconds 5] [--batch 100]

Prints signatures/s on a SoftHSM2 P-256 key, SODs/s through `DsSigningService.sign_batch`
(block reservations, usage window checked per signature, SOD built and verified, counts
settled before return — the count is checked exact at the end), and SODs/s through
``POST /v1/ds/passport/sod/batch`` on uvicorn (loopback), with the ratios against the
targets (service ≥ 0.9 × raw, HTTP ≥ 0.5 × service).  Throwaway token and database.
"""

from __future__ import annotations

import argparse
import base64
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from icao_pki.clock import SystemClock
from icao_pki.signer import HashAlgorithm


def _rate(fn, seconds: float) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += fn()
    return done / (time.perf_counter() - start), done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="icao-pki-signbench-"))
    from lifecycle_api.signing.sandbox import open_sandbox

    clock = SystemClock()
    box = open_sandbox(clock, folder=folder)
    try:
        return _run(box, clock, args.seconds, args.batch)
    finally:
        box.close()


def _run(box, clock, seconds: float, batch: int) -> int:  # type: ignore[no-untyped-def]
    import httpx
    import uvicorn

    from icao_pki.policy import DocumentType
    from lifecycle_api.app import create_app
    from lifecycle_api.organisations import bootstrap_provider, create_operator
    from lifecycle_api.settings import ScryptParameters, Settings
    from lifecycle_api.signing import DsSigningService, SodInput, usage_report
    from lifecycle_api.signing.routes import mount_signing
    from lifecycle_api.store import OperatorKind

    key_id = box.issuer.issue(DocumentType.PASSPORT)
    with box.store.transaction() as tx:
        label = tx.key(key_id).hsm_label
    signer = box.keystore.signer(label)
    payload = bytes(range(200))
    raw, _ = _rate(lambda: (signer.sign(payload, HashAlgorithm.SHA256), 1)[1], seconds)

    dg1 = bytes([0x61, 0x5B, 0x5F, 0x1F, 0x58]) + b"P<UTOERIKSSON<<ANNA<MARIA" + b"<" * 19 + b"L898902C36UTO7408122F1204159ZE184226B<<<<<10"
    items = [SodInput({1: dg1, 2: bytes([0x75, 0x04]) + i.to_bytes(4, "big")}) for i in range(batch)]
    service = DsSigningService(box.store, box.keystore, clock, block_size=max(256, batch))
    inproc, count = _rate(lambda: len(service.sign_batch("passport", items)), seconds)
    service.close()
    sampled_service = DsSigningService(box.store, box.keystore, clock, block_size=max(256, batch), verify_every=16)
    sampled, sampled_count = _rate(lambda: len(sampled_service.sign_batch("passport", items)), seconds)
    sampled_service.close()
    count += sampled_count
    [usage] = usage_report(box.store)
    exact = usage.signed == count and usage.reserved_unused == 0

    settings = Settings(database_url=str(box.store.engine.url), scrypt=ScryptParameters(n=2**14, r=8, p=1))
    app = create_app(settings, clock, store=box.store)
    http_service = DsSigningService(box.store, box.keystore, clock, block_size=max(256, batch))
    mount_signing(app, http_service)
    admin = bootstrap_provider(app.state.services, name="Bench Provider")
    with box.store.transaction() as tx:
        line = create_operator(tx, app.state.services, None, admin.operator.organisation_id, name="line-1",
                               kind=OperatorKind.SERVICE_ACCOUNT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    body = {"items": [{"data_groups": {str(k): base64.b64encode(v).decode() for k, v in (i.data_groups or {}).items()}}
                      for i in items]}
    headers = {"Authorization": f"Bearer {line.token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        def one() -> int:
            r = client.post("/v1/ds/passport/sod/batch", json=body, headers=headers)
            r.raise_for_status()
            return len(r.json()["items"])

        over_http, http_count = _rate(one, seconds)
    server.should_exit = True
    thread.join(timeout=10)
    http_service.close()
    [usage] = usage_report(box.store)
    exact = exact and usage.signed == count + http_count and usage.reserved_unused == 0

    print(f"raw PKCS#11 ECDSA P-256 signatures/s (SoftHSM2):      {raw:9.0f}")
    print(f"in-process service SODs/s (batch {batch}, exact count): {inproc:9.0f}   ratio {inproc / raw:.2f} (target ≥ 0.90)")
    print(f"  same, verifying 1 signature in 16:                    {sampled:9.0f}   ratio {sampled / raw:.2f}")
    print(f"HTTP API SODs/s (batch {batch} per request):           {over_http:9.0f}   ratio {over_http / inproc:.2f} "
          "(target ≥ 0.50 of in-process)")
    print(f"count exact: {exact} (signed {usage.signed:,}, reserved-but-unused {usage.reserved_unused})")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
