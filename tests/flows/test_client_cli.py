"""`icao-pki client …` drives every flow end to end against the ASGI app (HTTP client, clock
and PKCS#11 signers injected): nobody hand-crafts CMS or CV requests."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cvc.builders import build_authenticated_request, build_dv_certificate, build_request
from cvc.certificate import ChatRole, parse_request
from cvc.certificate import parse_certificate as parse_cv
from cvc.validation import verify_chain_at
from icao_pki.certificate import parse_certificate
from icao_pki.crl import verify_crl
from lifecycle_api import cli
from tests.flows.pki import PkiWorld, unb64

pytestmark = pytest.mark.hsm
runner = CliRunner()


class Cli:
    def __init__(self, pki: PkiWorld, tmp: Path) -> None:
        self.pki, self.tmp = pki, tmp
        for key, party in pki.world.parties.items():
            (tmp / f"{key}.der").write_bytes(party.identity.certificate.der)

    def args(self, party: str, signing: bool) -> list[str]:
        if party == "officer2":
            return ["--token", self.pki.officer2_token, "--organisation-id",
                    str(self.pki.world["provider"].organisation_id)]
        p = self.pki.world[party]
        args = ["--token", p.token, "--organisation-id", str(p.organisation_id)]
        if signing:
            args += ["--key-label", f"org-{party}-00001", "--certificate", str(self.tmp / f"{party}.der")]
        return args

    def run(self, party: str, *command: str, signing: bool = False, code: int = 0) -> Any:
        r = runner.invoke(cli.app, [*command, "--json", *self.args(party, signing)])
        assert r.exit_code == code, (r.stdout, r.stderr)
        return json.loads(r.stdout) if code == 0 else r

    def table(self, party: str, *command: str) -> str:
        r = runner.invoke(cli.app, [*command, *self.args(party, False)])
        assert r.exit_code == 0, (r.stdout, r.stderr)
        return r.stdout

    def countersign_and_act(self, request_id: str) -> dict[str, Any]:
        assert self.run("coyeu", "countersign", request_id, signing=True)["state"] == "countersigned"
        done = self.run("provider", "act", request_id)
        assert done["state"] == "completed", done
        return done["result"]


@pytest.fixture
def client_cli(pki_sqlite: PkiWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    pki = pki_sqlite
    org_signers = {f"org-{k}-00001": p.identity.signer for k, p in pki.world.parties.items()}
    monkeypatch.setattr(cli, "http_factory", lambda url: pki.world.client)
    monkeypatch.setattr(cli, "signer_factory",
                        lambda label: org_signers[label] if label in org_signers else pki.keystore.signer(label))
    monkeypatch.setattr(cli, "SystemClock", lambda: pki.world.clock)
    return Cli(pki, tmp_path)


def _cert(pki: PkiWorld, certificate_id: int) -> bytes:
    return unb64(pki.client.get(f"/v1/certificates/{certificate_id}", headers=pki.headers("provider")).json()["der"])


def test_cli_ds_flow_and_revocation(client_cli: Cli) -> None:
    c, pki = client_cli, client_cli.pki
    submitted = c.run("agency", "ds-request", "--document-type", "passport", signing=True)
    assert submitted["request_type"] == "ds_certificate" and submitted["state"] == "submitted"
    assert submitted["payload"]["hsm_label"].startswith("passport-ds-")
    assert submitted["id"] in c.table("coyeu", "queue")
    result = c.countersign_and_act(submitted["id"])
    # the Agency fetches its certificate
    mine = c.run("agency", "certificates")
    assert [x["certificate_id"] for x in mine if x["role"] == "ds"] == [result["certificate_id"]]
    out = c.tmp / "ds.der"
    c.run("agency", "certificate", str(result["certificate_id"]), "--out", str(out))
    ds = parse_certificate(out.read_bytes())
    ds.verify_issued_by(parse_certificate(_cert(pki, pki.ceremonies["passport_csca"]["certificate_id"])))
    assert "ds" in c.table("agency", "certificates")
    # the exact count per DS key: the new key signs now, nothing signed yet
    (key,) = c.run("agency", "ds-keys", "passport")["keys"]
    assert (key["key_label"], key["state"], key["signed"], key["signing_now"]) == (
        submitted["payload"]["hsm_label"], "active", 0, True)
    assert f"{key['key_label']} *" in c.table("agency", "ds-keys", "passport")
    # revocation, Art. 17 reason
    rev = c.run("agency", "revoke", str(result["certificate_id"]), "--reason", "key-compromise", signing=True)
    assert rev["payload"] == {"certificate_id": result["certificate_id"], "reason": "key-compromise"}
    assert c.countersign_and_act(rev["id"])["article"] == "Art. 17.1b"
    crl = verify_crl(pki.client.get("/v1/pub/crl/passport").content,
                     parse_certificate(_cert(pki, pki.ceremonies["passport_csca"]["certificate_id"])))
    assert crl.is_revoked(ds.serial_number) is not None
    assert c.run("agency", "certificate", str(result["certificate_id"]))["status"] == "revoked"
    # its certificate revoked, the key can no longer be named in a SOD: the report says so
    assert [k["signing_now"] for k in c.run("agency", "ds-keys", "passport")["keys"]] == [False]
    assert "no DS key can sign passport SODs now" in c.table("agency", "ds-keys", "passport")
    # a reason the decree does not allow here: one line, exit 2, naming the article
    r = c.run("agency", "revoke", str(result["certificate_id"]), "--reason", "position-changed", signing=True, code=2)
    assert "Art. 17.2b" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_is_request_and_renewal(client_cli: Cli) -> None:
    c, pki = client_cli, client_cli.pki
    dv_chr = pki.ceremonies["passport_dvca"]["chr"]
    label1, _ = pki.terminal_key()
    first = c.run("is_operator", "is-request", "--document-type", "passport", "--terminal-key-label", label1,
                  "--chr", "VNISNB00031", "--car", dv_chr, signing=True)
    is1 = c.countersign_and_act(first["id"])
    assert parse_cv(unb64(is1["der"])).chr == "VNISNB00031"
    # renewal: the new request is authenticated by the current IS key
    label2, _ = pki.terminal_key()
    saved = c.tmp / "renewal.cvreq"
    second = c.run("is_operator", "is-request", "--document-type", "passport", "--terminal-key-label", label2,
                   "--chr", "VNISNB00032", "--car", dv_chr, "--renew-with-key-label", label1,
                   "--current-chr", "VNISNB00031", "--out", str(saved), signing=True)
    assert parse_request(saved.read_bytes()).outer_car == "VNISNB00031"
    is2 = parse_cv(unb64(c.countersign_and_act(second["id"])["der"]))
    cvca = parse_cv(_cert(pki, pki.ceremonies["passport_cvca"]["certificate_id"]))
    dv = parse_cv(_cert(pki, pki.ceremonies["passport_dvca"]["certificate_id"]))
    assert is2.chr == "VNISNB00032" and verify_chain_at(cvca, [dv, is2], pki.world.clock.now().date()).valid
    # a prebuilt request file works too; missing pieces are one-line errors
    label3, signer3 = pki.terminal_key()
    prebuilt = c.tmp / "is.cvreq"
    prebuilt.write_bytes(build_request(signer3, chr="VNISNB00033", car=dv_chr))
    third = c.run("is_operator", "is-request", "--document-type", "passport", "--cv-request", str(prebuilt),
                  signing=True)
    assert third["state"] == "submitted"
    r = c.run("is_operator", "is-request", "--document-type", "passport", "--terminal-key-label", label3,
              signing=True, code=2)
    assert "--chr" in r.stderr


def test_cli_foreign_dv_request(client_cli: Cli) -> None:
    c, pki = client_cli, client_cli.pki
    ours = parse_cv(_cert(pki, pki.ceremonies["passport_cvca"]["certificate_id"]))
    label = str(pki.keystore.next_label("uto", "dv"))
    inner = build_request(pki.keystore.generate_key(label, "brainpoolP256r1"), chr="UTDVVN00031", car=ours.chr)
    file = c.tmp / "uto-dv.cvreq"
    file.write_bytes(build_authenticated_request(inner, pki.keystore.signer(pki.uto_cvca_label),
                                                 outer_car=pki.uto_cvca_chr))
    state = str(pki.world["foreign"].organisation_id)
    req = c.run("agency", "foreign-dv-request", "--cv-request", str(file), "--foreign-state", state, signing=True)
    dv = parse_cv(unb64(c.countersign_and_act(req["id"])["der"]))
    assert dv.role is ChatRole.DV_FOREIGN and dv.car == ours.chr
    # the foreign state fetches its result
    assert [x["chr"] for x in c.run("foreign", "certificates") if x["role"] == "dvca"] == ["UTDVVN00031"]


def test_cli_dv_abroad_export_and_import(client_cli: Cli) -> None:
    c, pki = client_cli, client_cli.pki
    state = str(pki.world["foreign"].organisation_id)
    req = c.run("agency", "dv-abroad", "request", "--foreign-state", state, signing=True)
    result = c.countersign_and_act(req["id"])
    exported = c.tmp / "vn-dv.cvreq"
    c.run("agency", "dv-abroad", "export", req["id"], "--out", str(exported))
    assert exported.read_bytes() == unb64(result["cv_request"])
    # Utopia issues our DV certificate from its CVCA; the Provider imports it
    uto = parse_cv(pki.uto_cvca_der)
    today = pki.world.clock.now().date()
    der = build_dv_certificate(pki.keystore.signer(pki.uto_cvca_label), uto, exported.read_bytes(), domestic=False,
                               effective_date=today, expiration_date=today + timedelta(days=80),
                               document_type="passport")
    cert_file = c.tmp / "vn-dv.cvcert"
    cert_file.write_bytes(der)
    installed = c.run("provider", "dv-abroad", "import", req["id"], "--foreign-certificate", str(cert_file))
    assert installed["chr"] == result["chr"]
    # the Agency may not import: 403 in one line
    r = c.run("agency", "dv-abroad", "import", req["id"], "--foreign-certificate", str(cert_file), code=2)
    assert "403" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_ceremony_needs_two_officers(client_cli: Cli) -> None:
    c = client_cli
    proposal = c.run("provider", "ceremony", "propose", "--kind", "csca", "--document-type", "idcard")
    assert proposal["request_type"] == "ceremony" and proposal["state"] != "completed"
    r = c.run("provider", "ceremony", "approve", proposal["id"], code=2)  # the proposer cannot approve
    assert len(r.stderr.strip().splitlines()) == 1
    done = c.run("officer2", "ceremony", "approve", proposal["id"])
    assert done["state"] == "completed"
    csca = c.run("provider", "certificate", str(done["result"]["certificate_id"]))
    assert csca["role"] == "csca" and csca["document_type"] == "idcard"
    assert f"\"certificate_id\": {csca['certificate_id']}" in c.table("officer2", "show", proposal["id"])
    # a proposal over the decree's limit is refused at once, naming the article
    r = c.run("provider", "ceremony", "propose", "--kind", "cvca", "--document-type", "passport",
              "--validity-months", "200", code=2)
    assert "Art." in r.stderr


def test_cli_unreachable_service_is_one_line(client_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "http_factory", lambda url: httpx.Client(base_url="http://127.0.0.1:9", timeout=2))
    r = client_cli.run("agency", "certificates", code=2)
    assert r.stderr.startswith("error: cannot reach the lifecycle API at http://127.0.0.1:9")
    assert len(r.stderr.strip().splitlines()) == 1
    r = runner.invoke(cli.app, ["revoke", "1", "--reason", "bored", *client_cli.args("agency", True)])
    assert r.exit_code == 2  # not an Art. 17 reason
