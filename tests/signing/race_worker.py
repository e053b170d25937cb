"""A signing (or rollover) process for the exactness tests; run as ``python -m tests.signing.race_worker``.

sign:     sign N SODs in batches on the DB at URL, appending "<label> <count>" per returned batch
          to OUT (flushed), so the parent knows what each process received even if it is killed.
rollover: perform the due DS rollovers with the direct issuer; with --pause, print "generated"
          after the HSM key is made and sleep before the database records it (the parent kills it there).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

from icao_pki.clock import SystemClock
from icao_pki.keystore import KeyStore, KeyStoreConfig, PinSource
from icao_pki.signer import HashAlgorithm
from lifecycle_api.signing import DsSigningService, SodInput, perform_rollovers
from lifecycle_api.signing.successor import DirectDsIssuer
from lifecycle_api.store import Store


def _open_keystore() -> KeyStore:
    """SoftHSM2's file store answers CKR_GENERAL_ERROR now and then when many processes open
    the token at once (the key store retries the same on sign); a worker retries opening."""
    from pkcs11.exceptions import GeneralError

    config = KeyStoreConfig(token_label=os.environ["ICAO_PKI_TOKEN_LABEL"], pin=PinSource(env="ICAO_PKI_HSM_PIN"))
    for attempt in range(5):
        try:
            return KeyStore.open(config)
        except GeneralError:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["sign", "rollover"])
    p.add_argument("url")
    p.add_argument("--n", type=int, default=0)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--block", type=int, default=500)
    p.add_argument("--out")
    p.add_argument("--csca-label")
    p.add_argument("--csca-file")
    p.add_argument("--pause", action="store_true")
    a = p.parse_args()
    keystore = _open_keystore()
    store = Store(a.url)
    clock = SystemClock()
    if a.mode == "rollover":
        with open(a.csca_file, "rb") as f:
            issuer = DirectDsIssuer(store, keystore, clock, a.csca_label, f.read())
        if a.pause:
            original = issuer._record_certificate

            def paused(*args, **kw):  # type: ignore[no-untyped-def]
                print("generated", flush=True)
                time.sleep(60)
                return original(*args, **kw)

            issuer._record_certificate = paused  # type: ignore[method-assign]
        print(len(perform_rollovers(store, clock, issuer)), flush=True)
        return 0
    service = DsSigningService(store, keystore, clock, block_size=a.block)
    pid = os.getpid().to_bytes(4, "big")
    done = 0
    with open(a.out, "a") as out:
        print("started", flush=True)
        while done < a.n:
            n = min(a.batch, a.n - done)
            items = [SodInput(dg_hashes={1: HashAlgorithm.SHA256.digest(pid + (done + i).to_bytes(8, "big")),
                                         2: HashAlgorithm.SHA256.digest(b"dg2")}) for i in range(n)]
            signed = service.sign_batch("passport", items)
            for label, count in Counter(s.key_label for s in signed).items():
                out.write(f"{label} {count}\n")
            out.flush()
            done += n
    service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
