"""Run in a subprocess by test_crash.py: generate an Agency's DS key in the HSM, then die
(SIGKILL, no cleanup, no rollback handler) before the database step that adopts it commits."""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime

from icao_pki.clock import FakeClock
from icao_pki.keystore import KeyStore, KeyStoreConfig, PinSource
from icao_pki.policy import DocumentType
from lifecycle_api.auth import Caller
from lifecycle_api.authority import Authority
from lifecycle_api.certificate_flows import create_ds_key
from lifecycle_api.services import Services
from lifecycle_api.settings import Settings
from lifecycle_api.store import PartyType, Store, StoreTx


def main() -> None:
    url, token_label, pin_env, org_id = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = Store(url)
    keystore = KeyStore.open(KeyStoreConfig(token_label=token_label, pin=PinSource(env=pin_env)))
    clock = FakeClock(datetime.fromisoformat(sys.argv[5]))  # the service's clock, as in the parent
    services = Services(settings=Settings(database_url=url), clock=clock, store=store, handlers=None,  # type: ignore[arg-type]
                        checker=None, calendar=None, authority=Authority(store, keystore, clock))  # type: ignore[arg-type]

    def power_cut(self: StoreTx, **_: object) -> None:
        print("KEY-GENERATED", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    StoreTx.add_key = power_cut  # type: ignore[method-assign]
    caller = Caller(operator_id=0, operator_name="crash", organisation_id=org_id, organisation_name="agency",
                    party_type=PartyType.AGENCY, ministry=None)
    create_ds_key(services, caller, DocumentType.PASSPORT, None)


if __name__ == "__main__":
    main()
