"""Through a real `icao-pki serve` process: the demo bootstrapped into a throwaway data folder
(`python -m fixtures.demo`), the server on a free loopback port, an Agency's DS request
signed by the `icao-pki client` with its key on the data folder's token, countersigned
automatically, issued by the Provider, and the certificate verified against the published CSCA."""

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
        kinds = {o["kind"] for o in http.get("/v1/pub").json()}
        assert {"csca", "crl", "cvca"} <= kinds
        agency, provider = creds["parties"]["agency"], creds["parties"]["provider"]
        key = http.post("/v1/ds/keys", json={"document_type": "passport"},
                        headers={"Authorization": f"Bearer {agency['token']}"})
        assert key.status_code == 201, key.text
        payload = json.dumps({"hsm_label": key.json()["hsm_label"], "csr": key.json()["csr"]})
        submit = subprocess.run(
            [str(ICAO_PKI), "client", "submit", "ds_certificate", "--payload", payload, "--document-type", "passport",
             "--url", base, "--token", agency["token"], "--organisation-id", str(agency["organisation_id"]),
             "--key-label", agency["key_label"], "--certificate", agency["certificate"], "--json"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert submit.returncode == 0, submit.stdout + submit.stderr
        request = json.loads(submit.stdout)
        assert request["state"] == "countersigned"  # the Cơ yếu unit countersigned automatically
        acted = http.post(f"/v1/requests/{request['id']}/act", headers={"Authorization": f"Bearer {provider['token']}"})
        assert acted.status_code == 200 and acted.json()["state"] == "completed", acted.text
        ds = parse_certificate(unb64(acted.json()["result"]["der"]))
        csca = next(o for o in http.get("/v1/pub/trusted-roots").json()
                    if o["kind"] == "csca" and o["document_type"] == "passport")
        ds.verify_issued_by(parse_certificate(unb64(csca["der"])))
        http.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
