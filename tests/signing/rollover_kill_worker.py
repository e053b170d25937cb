"""A service process that runs the DS rollover job through the Agency flow, for the SIGKILL tests
(tests/signing/test_rollover_kill.py); run as ``python -m tests.signing.rollover_kill_worker``.

It wires the service as `icao-pki serve` does — `create_app` (sign component, handlers,
signature checker) and `schedules.runtime.job_context` (the production `AgencyFlowRequester`
per document type) — on the test's file SQLite database and SoftHSM2 token, with a fixed clock
given on the command line (the test's fake time).

    CONFIG --now ISO --kill-at POINT   run the "ds-rollover-check" job and SIGKILL this process
                                       at POINT (below); exits normally if POINT is never reached
    CONFIG --now ISO --restart         start the app as uvicorn does (its start-up recovery,
                                       `Authority.recover`), then run the rollover job once

Kill points, reached by monkeypatching *in this process only* (no hooks in product code):

key-generated           the successor key and its CSR exist in the HSM (journal: done), the
                        database has no key row yet
key-committed           the key row and its CSR committed, no request submitted
request-submitted       the request submitted (and countersigned by the Cơ yếu unit's automatic
                        policy in the same transaction), before the Provider acts
certificate-hsm-signed  the Provider acts: the HSM has signed the DS certificate, inside the sign
                        component, before the product is verified and journalled done
certificate-signed      the sign component returned the verified certificate (journal: done),
                        before the step that stores it commits

Each prints ``SIGKILL <point>`` (flushed) right before killing itself; ``--restart`` prints a
JSON line with the rollover job's actions.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

POINTS = ("key-generated", "key-committed", "request-submitted", "certificate-hsm-signed", "certificate-signed")


def _die(point: str) -> NoReturn:
    print(f"SIGKILL {point}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL is not catchable")


def _arm(point: str) -> None:
    """Monkeypatch this process so that it dies at `point` (see the module doc)."""
    from lifecycle_api import authority as authority_module
    from lifecycle_api.authority import Authority
    from lifecycle_api.signing import flow

    original_sign = Authority.sign
    if point == "key-committed":
        def submit(*args: Any, **kwargs: Any) -> str:
            _die(point)

        flow.AgencyFlowRequester._submit = submit  # type: ignore[method-assign]
    elif point == "request-submitted":
        def after_countersigned(*args: Any, **kwargs: Any) -> None:
            _die(point)

        flow.after_countersigned = after_countersigned  # type: ignore[assignment]
    elif point in ("key-generated", "certificate-signed"):
        purpose = "DS CSR" if point == "key-generated" else "DS certificate"

        def sign_then_die(self: Authority, *args: Any, **kwargs: Any) -> Any:
            signed = original_sign(self, *args, **kwargs)
            if kwargs.get("purpose") == purpose:
                _die(point)
            return signed

        Authority.sign = sign_then_die  # type: ignore[method-assign]
    elif point == "certificate-hsm-signed":
        armed: list[bool] = []

        def sign_arming(self: Authority, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("purpose") == "DS certificate":
                armed.append(True)
            return original_sign(self, *args, **kwargs)

        original_hsm_sign = authority_module._JournalledSigner.sign

        def hsm_sign_then_die(self: Any, *args: Any, **kwargs: Any) -> bytes:
            signature = original_hsm_sign(self, *args, **kwargs)
            if armed:
                _die(point)
            return signature

        Authority.sign = sign_arming  # type: ignore[method-assign]
        authority_module._JournalledSigner.sign = hsm_sign_then_die  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown kill point {point!r}; one of {', '.join(POINTS)}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("config", type=Path)
    p.add_argument("--now", required=True, type=datetime.fromisoformat)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--kill-at", choices=POINTS)
    mode.add_argument("--restart", action="store_true")
    a = p.parse_args()
    if a.kill_at:
        _arm(a.kill_at)

    from fastapi.testclient import TestClient

    from icao_pki.clock import FakeClock
    from icao_pki.policy import DocumentType, Policy
    from lifecycle_api.app import create_app
    from lifecycle_api.settings import ScryptParameters, Settings
    from lifecycle_api.signed_documents import OrgPkiTrust
    from lifecycle_api.signing.rollover import RolloverThresholds
    from lifecycle_api.store import Store
    from schedules.jobs import JOBS
    from schedules.runtime import job_context
    from tests.signing.race_worker import _open_keystore

    config = json.loads(a.config.read_text())
    keystore = _open_keystore()
    store = Store(config["database_url"])
    clock = FakeClock(a.now)
    settings = Settings(database_url=config["database_url"], scrypt=ScryptParameters(n=2**4, r=8, p=1),
                        policy=Policy.with_overrides(config["policy_overrides"]),
                        auto_act_request_types=tuple(config["auto_act"]))
    trust = OrgPkiTrust(roots=tuple(base64.b64decode(d) for d in config["org_pki_roots"]),
                        intermediates=tuple(base64.b64decode(d) for d in config["org_pki_intermediates"]))
    app = create_app(settings, clock, trust=trust, store=store, keyring=keystore)
    ctx = job_context(app.state.services, keystore,
                      agency_operator_ids={DocumentType.PASSPORT: config["agency_operator_id"]},
                      thresholds=RolloverThresholds(count_fraction=config["count_fraction"]))
    rollover = JOBS["ds-rollover-check"].run
    if a.kill_at:
        actions = rollover(ctx)
        print(json.dumps({"survived": a.kill_at, "actions": len(actions)}), flush=True)
        return 3  # the kill point was never reached: the test fails on this
    with TestClient(app):  # the lifespan: start-up recovery as under uvicorn, shutdown after
        actions = rollover(ctx)
        swept = JOBS["overdue-requests"].run(ctx)  # what the scheduler's next runs do
    print(json.dumps({"actions": [{"reason": x.due.reason, "key_id": x.due.key_id, "reference": x.reference}
                                  for x in actions], "auto_acted": swept["auto_acted"]}), flush=True)
    store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
