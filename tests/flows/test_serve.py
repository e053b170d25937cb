"""Through a real `icao-pki serve` process: the demo bootstrapped into a throwaway data folder
(`python -m fixtures.demo`), the server on a free loopback port with the Provider's policy
from the environment (``ICAO_PKI_AUTO_ACT=ds_certificate``); `icao-pki client ds-request`
signs the Agency's DS request with its key on the data folder's token, the Cơ yếu unit
countersigns and the Provider's service account issues automatically, the certificate is
fetched with `icao-pki client certificate` and verified against the published CSCA; then
`icao-pki client revoke` (not in the policy: waits for `icao-pki client act`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from icao_pki.certificate import parse_certificate
from tests.flows.pki import unb64

pytestmark = [pytest.mark.hsm, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ICAO_PKI = Path(sys.executable).with_name("icao-pki")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SOFTHSM2_CONF", "ICAO_PKI_HSM_PIN", "ICAO_PKI_HSM_PIN_FILE", "DATABASE_URL",
                        "ICAO_PKI_PKCS11_MODULE")}
    env["ICAO_PKI_DATA_DIR"] = str(data_dir)
    return env


def test_serve_process_demo_ds_flow(tmp_path: Path) -> None:
    if not ICAO_PKI.exists():
        pytest.skip(f"serve test NOT RUN: {ICAO_PKI} is not installed (pip install -e .)")
    data = tmp_path / "var"
    env = _env(data)
    boot = subprocess.run([sys.executable, "-m", "fixtures.demo"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    creds = json.loads(Path(json.loads(boot.stdout.strip().splitlines()[-1])["credentials"]).read_text())
    env["ICAO_PKI_ORG_PKI_ROOTS"] = creds["org_pki_roots"]
    env["ICAO_PKI_ORG_PKI_INTERMEDIATES"] = creds["org_pki_intermediates"]
    env["ICAO_PKI_AUTO_ACT"] = "ds_certificate"  # the demo's service account "auto-act" acts
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(ICAO_PKI), "serve", "--port", str(port)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 45
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else "server exited"
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "icao-pki serve did not answer within 45 s"
            time.sleep(0.3)
        http = httpx.Client(base_url=base, timeout=30)
        assert http.get("/docs").status_code == 200
        sod = http.get("/openapi.json").json()["paths"]["/v1/ds/{document_type}/sod"]["post"]
        assert sod["requestBody"]["content"]["application/json"]["example"]  # examples in the served document
        kinds = {o["kind"] for o in http.get("/v1/pub").json()}
        assert {"csca", "crl", "cvca"} <= kinds
        agency, provider = creds["parties"]["agency"], creds["parties"]["provider"]

        def client(party: dict, *args: str, signing: bool = True) -> dict:
            command = [str(ICAO_PKI), "client", *args, "--url", base, "--token", party["token"],
                       "--organisation-id", str(party["organisation_id"]), "--json"]
            if signing:
                command += ["--key-label", party["key_label"], "--certificate", party["certificate"]]
            done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr
            return json.loads(done.stdout)

        request = client(agency, "ds-request", "--document-type", "passport")
        # countersigned automatically (the unit's key is held centrally), issued automatically (the policy)
        assert request["state"] == "completed", request
        certificate_id = request["result"]["certificate_id"]
        out = tmp_path / "ds.der"
        client(agency, "certificate", str(certificate_id), "--out", str(out), signing=False)
        ds = parse_certificate(out.read_bytes())
        csca = next(o for o in http.get("/v1/pub/trusted-roots").json()
                    if o["kind"] == "csca" and o["document_type"] == "passport")
        ds.verify_issued_by(parse_certificate(unb64(csca["der"])))
        revocation = client(agency, "revoke", str(certificate_id), "--reason", "key-compromise")
        assert revocation["state"] == "countersigned"  # revocation is not in the Provider's policy
        acted = client(provider, "act", revocation["id"], signing=False)
        assert acted["state"] == "completed" and acted["result"]["article"] == "Art. 17.1b"
        assert client(agency, "certificate", str(certificate_id), signing=False)["status"] == "revoked"
        http.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
