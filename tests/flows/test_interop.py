"""The flows' products checked by tools nobody here wrote: OpenPACE's cvc-print for the CV
chains, OpenSSL for the RSA (ID-card) X.509 chain, its CRL and the Master List (CMS).

cvc-print checks validity against the real date, so these worlds move their clock to now
and run a DVCA ceremony then.  OpenSSL 3 refuses explicit-parameter EC keys in chains
(error 94, tests/icao/test_certificate_interop.py), hence the RSA ID-card hierarchy here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cvc.builders import build_authenticated_request, build_request
from icao_pki.certificate import parse_certificate
from icao_pki.clock import SystemClock
from tests.flows.pki import PkiWorld, b64, unb64
from tests.flows.test_flows_e2e import issue_ds

pytestmark = [pytest.mark.hsm, pytest.mark.openpace, pytest.mark.openssl]


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"interop NOT RUN: {', '.join(missing)} missing (Debian openpace / openssl; `make test` installs them)")


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def _cert(pki: PkiWorld, certificate_id: int) -> bytes:
    return unb64(pki.client.get(f"/v1/certificates/{certificate_id}", headers=pki.headers("provider")).json()["der"])


def _cvc_print_last_line(cert: bytes, name: str, cvc_dir: Path) -> str:
    path = cvc_dir.parent / f"{name}.cvcert"
    path.write_bytes(cert)
    proc = _run("cvc-print", "--cvc", path, "--cvc-dir", cvc_dir, cwd=cvc_dir.parent)
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def test_cv_chains_verified_by_cvc_print(pki_sqlite: PkiWorld, tmp_path: Path) -> None:
    _require("cvc-print")
    pki = pki_sqlite
    pki.world.clock.set(SystemClock().now())
    pki.world.import_crls()  # the government CA's CRLs, fresh at the new time
    dv = pki.ceremony(kind="dvca", document_type="passport")
    _, signer = pki.terminal_key()
    is_req = build_request(signer, chr="VNISNB77001", car=dv["chr"])
    is_cert = unb64(pki.flow("is_operator", "is_certificate", "passport", {"cv_request": b64(is_req)})["result"]["der"])
    # a foreign DV certified by our CVCA
    cvca_id = pki.ceremonies["passport_cvca"]["certificate_id"]
    cvca_der = _cert(pki, cvca_id)
    cvca_chr = pki.ceremonies["passport_cvca"]["chr"]
    _, dv_signer = pki.terminal_key()
    inner = build_request(dv_signer, chr="UTDVVN77001", car=cvca_chr)
    outer = build_authenticated_request(inner, pki.keystore.signer(pki.uto_cvca_label), outer_car=pki.uto_cvca_chr)
    foreign_dv = unb64(pki.flow("agency", "foreign_dv_certificate", "passport", {
        "cv_request": b64(outer), "foreign_state_organisation_id": pki.world["foreign"].organisation_id,
    })["result"]["der"])
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / cvca_chr).write_bytes(cvca_der)  # issuers are found by files named exactly after their CHR
    (trust / dv["chr"]).write_bytes(_cert(pki, dv["certificate_id"]))
    assert _cvc_print_last_line(cvca_der, "cvca", trust) == "certificate verified"
    assert _cvc_print_last_line(_cert(pki, dv["certificate_id"]), "dv", trust) == "certificate verified"
    assert _cvc_print_last_line(is_cert, "is", trust) == "certificate verified"
    assert _cvc_print_last_line(foreign_dv, "foreign-dv", trust) == "certificate verified"
    # and it can fail: one flipped signature byte
    broken = bytearray(is_cert)
    broken[-5] ^= 0x01
    assert _cvc_print_last_line(bytes(broken), "broken", trust) != "certificate verified"


def _pem(der: bytes, path: Path, kind: str = "CERTIFICATE") -> Path:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    path.write_text(f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n")
    return path


def test_rsa_idcard_chain_crl_and_master_list_verified_by_openssl(pki_sqlite: PkiWorld, tmp_path: Path) -> None:
    _require("openssl")
    pki = pki_sqlite
    result = issue_ds(pki, "idcard", "idcard_agency")
    csca = _pem(_cert(pki, pki.ceremonies["idcard_csca"]["certificate_id"]), tmp_path / "csca.pem")
    ds = _pem(unb64(result["der"]), tmp_path / "ds.pem")
    proc = _run("openssl", "verify", "-x509_strict", "-CAfile", csca, ds, cwd=tmp_path)
    assert proc.returncode == 0 and "ds.pem: OK" in proc.stdout, proc.stdout + proc.stderr
    # revoke it: the published CRL verifies with the CSCA and lists the DS serial
    pki.flow("idcard_agency", "revocation", None, {"certificate_id": result["certificate_id"], "reason": "key-device-lost"})
    crl = tmp_path / "crl.der"
    crl.write_bytes(pki.client.get("/v1/pub/crl/idcard").content)
    proc = _run("openssl", "crl", "-inform", "DER", "-in", crl, "-CAfile", csca, "-noout", "-text", cwd=tmp_path)
    assert proc.returncode == 0 and "verify OK" in proc.stderr + proc.stdout, proc.stdout + proc.stderr
    serial = format(parse_certificate(unb64(result["der"])).serial_number, "X")
    assert serial.lstrip("0") in proc.stdout.replace(":", "").upper()
    proc = _run("openssl", "verify", "-crl_check", "-CRLfile", _pem(crl.read_bytes(), tmp_path / "crl.pem", "X509 CRL"),
                "-CAfile", csca, ds, cwd=tmp_path)
    assert proc.returncode != 0 and "revoked" in proc.stdout + proc.stderr
    # the Master List, signed by an ML signer issued from the ID-card CSCA
    r = pki.client.post("/v1/publication/master-list", json={"document_type": "idcard"},
                        headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    ml = tmp_path / "ml.der"
    ml.write_bytes(pki.client.get("/v1/pub/master-list").content)
    at = str(int(pki.world.clock.now().timestamp()) + 60)  # the world's time (its ML signer lives 3 months)
    proc = _run("openssl", "cms", "-verify", "-inform", "DER", "-in", ml, "-CAfile", csca, "-purpose", "any", "-attime", at,
                "-out", tmp_path / "content.der", "-binary", cwd=tmp_path)
    assert proc.returncode == 0 and "Verification successful" in proc.stderr, proc.stdout + proc.stderr
