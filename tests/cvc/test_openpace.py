"""Interoperability with OpenPACE (`cvc-create`, `cvc-print`), a tool nobody here wrote.

1. Certificates made by `cvc-create` from OpenSSL keys: we parse them, re-encode them
   byte for byte, our `show` agrees with `cvc-print` field by field, and both our
   validations accept the chain.
2. Our own CVCA → DV → IS chain and CVCA link: `cvc-print --cvc CERT --cvc-dir DIR`
   prints `certificate verified` (it exits 0 even on failure, so the last line is read;
   it finds issuers by files named exactly after their CHR, and checks the validity
   against today's date, so these chains start today).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvc.builders import (
    build_authenticated_request,
    build_cvca_certificate,
    build_cvca_link_certificate,
    build_dv_certificate,
    build_request,
    build_terminal_certificate,
)
from cvc.certificate import CvCertificate, encode_certificate, parse_certificate
from cvc.validation import ChipState, verify_chain_as_chip, verify_chain_at
from icao_pki.cli import app
from icao_pki.clock import SystemClock
from icao_pki.signer import Signer
from tests.cvc.openpace import (
    ROLE_TEXT,
    V22_BITS_OPENPACE_CALLS_RFU,
    cvc_print,
    openssl_key,
    require_openpace,
    run,
    yymmdd,
)
from tests.support.softsigner import SoftwareSigner

pytestmark = pytest.mark.openpace


def today() -> date:
    """cvc-print checks validity against the real date, so interop chains start today."""
    return SystemClock().now().date()


def assert_show_matches_cvc_print(path: Path, cvc_dir: Path | None = None) -> None:
    """Our `show --json` against `cvc-print`, field by field."""
    shown = CliRunner().invoke(app, ["cvc", "show", str(path), "--json"])
    assert shown.exit_code == 0, shown.output
    ours = json.loads(shown.stdout)
    theirs = cvc_print(path, cvc_dir)
    assert ours["profile_identifier"] == theirs.profile_identifier
    assert ours["car"] == theirs.car
    assert ours["chr"] == theirs.chr
    assert ours["terminal_type"] == theirs.terminal_type
    assert ROLE_TEXT[ours["role"]] == theirs.role_text
    named = [r for r in ours["rights"] if r not in V22_BITS_OPENPACE_CALLS_RFU]
    assert sorted(named) == sorted(r for r in theirs.rights if r != "RFU"), theirs.raw
    assert len(ours["rights"]) - len(named) == theirs.rights.count("RFU")
    assert ours["effective_date"] == theirs.effective_date
    assert ours["expiration_date"] == theirs.expiration_date


# --- 1. certificates made by cvc-create ---------------------------------------------------

#: (key spec, terminal type, CVCA scheme, DV scheme, terminal scheme)
OPENPACE_CASES = [
    ("brainpoolP256r1", "is", "ECDSA_SHA_256", "ECDSA_SHA_256", "ECDSA_SHA_256"),
    ("secp256r1", "at", "ECDSA_SHA_256", "ECDSA_SHA_224", "ECDSA_SHA_256"),
    ("brainpoolP384r1", "st", "ECDSA_SHA_384", "ECDSA_SHA_384", "ECDSA_SHA_512"),
    ("rsa2048", "at", "RSA_v1_5_SHA_256", "RSA_PSS_SHA_256", "RSA_v1_5_SHA_512"),
]


def _rights_args(ttype: str, role: str) -> list[str]:
    if ttype == "at":
        wide = ["--read-dg1", "--read-dg3", "--read-dg4", "--verify-age", "--write-dg17", "--rid", "--at-rfu29"]
        return {"cvca": wide, "dv_domestic": wide[:4], "dv_foreign": wide[:2], "terminal": ["--read-dg3"]}[role]
    raw = {"cvca": "C3", "dv_domestic": "83", "dv_foreign": "43", "terminal": "01"}[role]
    return [f"--chat={raw}"]


@dataclass
class OpenPaceChain:
    dir: Path
    trust_dir: Path
    cvca: Path
    dv: Path
    dv_foreign: Path
    terminal: Path
    link: Path


@pytest.fixture(scope="module", params=OPENPACE_CASES, ids=[c[0] for c in OPENPACE_CASES])
def openpace_chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> OpenPaceChain:
    require_openpace()
    spec, ttype, cvca_scheme, dv_scheme, term_scheme = request.param
    d = tmp_path_factory.mktemp(f"openpace-{spec}")
    keys = {name: openssl_key(spec, d / f"{name}.pkcs8") for name in ("cvca", "dv", "term", "cvca2")}
    day = today()
    issued, cc = yymmdd(day), spec[:2].upper() if not spec.startswith("rsa") else "RS"
    chr_cvca, chr_dv, chr_dvf, chr_term, chr_cvca2 = (f"{cc}CVCA00001", f"{cc}DV00001", f"{cc}DVF00001", f"{cc}IS00001", f"{cc}CVCA00002")

    def create(*args: str) -> None:
        proc = run("cvc-create", f"--issued={issued}", *args, cwd=d)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    create("--role=cvca", f"--type={ttype}", f"--chr={chr_cvca}", f"--expires={yymmdd(day + timedelta(days=700))}",
           f"--sign-with={keys['cvca']}", f"--scheme={cvca_scheme}", *_rights_args(ttype, "cvca"))
    create("--role=dv_domestic", f"--chr={chr_dv}", f"--expires={yymmdd(day + timedelta(days=80))}",
           f"--sign-with={keys['cvca']}", f"--sign-as={chr_cvca}.cvcert", f"--key={keys['dv']}", f"--scheme={dv_scheme}",
           *_rights_args(ttype, "dv_domestic"))
    create("--role=dv_foreign", f"--chr={chr_dvf}", f"--expires={yymmdd(day + timedelta(days=80))}",
           f"--sign-with={keys['cvca']}", f"--sign-as={chr_cvca}.cvcert", f"--key={keys['dv']}", f"--scheme={dv_scheme}",
           *_rights_args(ttype, "dv_foreign"))
    create("--role=terminal", f"--chr={chr_term}", f"--expires={yymmdd(day + timedelta(days=25))}",
           f"--sign-with={keys['dv']}", f"--sign-as={chr_dv}.cvcert", f"--key={keys['term']}", f"--scheme={term_scheme}",
           *_rights_args(ttype, "terminal"))
    create("--role=cvca", f"--chr={chr_cvca2}", f"--expires={yymmdd(day + timedelta(days=900))}",
           f"--sign-with={keys['cvca']}", f"--sign-as={chr_cvca}.cvcert", f"--key={keys['cvca2']}", f"--scheme={cvca_scheme}",
           "--out-cert=link.cvcert", *_rights_args(ttype, "cvca"))
    trust = d / "trust"
    trust.mkdir()
    for chr in (chr_cvca, chr_dv):
        (trust / chr).write_bytes((d / f"{chr}.cvcert").read_bytes())
    return OpenPaceChain(d, trust, d / f"{chr_cvca}.cvcert", d / f"{chr_dv}.cvcert", d / f"{chr_dvf}.cvcert",
                         d / f"{chr_term}.cvcert", d / "link.cvcert")


def test_openpace_certificates_parse_and_reencode_identically(openpace_chain: OpenPaceChain) -> None:
    c = openpace_chain
    roles = {}
    for path in (c.cvca, c.dv, c.dv_foreign, c.terminal, c.link):
        der = path.read_bytes()
        cert = parse_certificate(der)
        assert encode_certificate(cert) == der
        roles[path.name] = cert.role.value
    assert list(roles.values()) == ["cvca", "dv_domestic", "dv_foreign", "terminal", "cvca"]
    cvca, dv, link = (parse_certificate(p.read_bytes()) for p in (c.cvca, c.dv, c.link))
    if cvca.public_key.kind.value == "ec":
        assert cvca.public_key.has_domain_parameters and not dv.public_key.has_domain_parameters
    assert link.is_link and link.car == cvca.chr


def test_openpace_show_agrees_with_cvc_print(openpace_chain: OpenPaceChain) -> None:
    c = openpace_chain
    for path in (c.cvca, c.dv, c.dv_foreign, c.terminal, c.link):
        assert_show_matches_cvc_print(path, c.trust_dir)


def test_openpace_chain_accepted_by_our_validation(openpace_chain: OpenPaceChain) -> None:
    c = openpace_chain
    cvca, dv, dvf, term, link = (parse_certificate(p.read_bytes()) for p in (c.cvca, c.dv, c.dv_foreign, c.terminal, c.link))
    day = today()
    report = verify_chain_at(cvca, [dv, term], day)
    assert report.terminal is not None and report.terminal.chr == term.chr
    assert verify_chain_at(cvca, [dvf], day).valid
    assert verify_chain_at(cvca, [link], day).valid
    chip = ChipState.personalised([cvca], day)
    result = verify_chain_as_chip(chip, [dv, term])
    assert result.effective_authorization is not None
    assert result.effective_authorization.rights_within(term.chat)
    rolled = verify_chain_as_chip(chip, [link])
    assert rolled.state.trust_points[0].chr == link.chr
    # the tool itself agrees (sanity check of the set-up)
    assert cvc_print(c.terminal, c.trust_dir).last_line == "certificate verified"


def test_openpace_cli_verify(openpace_chain: OpenPaceChain) -> None:
    c = openpace_chain
    res = CliRunner().invoke(
        app, ["cvc", "verify", str(c.terminal), str(c.dv), "--trust", str(c.cvca), "--at", today().isoformat(), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["valid"] is True


# --- 2. our chain, checked by cvc-print ----------------------------------------------------


@dataclass
class OwnChain:
    cvca: CvCertificate
    dv: CvCertificate
    terminal: CvCertificate
    new_cvca: CvCertificate
    link: CvCertificate


def build_own_chain(signers: dict[str, Signer], country: str, terminal_type: str = "is") -> OwnChain:
    day = today()
    cvca_chr, new_chr, dv_chr, is_chr = f"{country}CVCA00001", f"{country}CVCA00002", f"{country}DV00001", f"{country}IS00001"
    cvca = parse_certificate(build_cvca_certificate(
        signers["cvca"], chr=cvca_chr, effective_date=day, expiration_date=day + timedelta(days=365),
        document_type="passport", terminal_type=terminal_type))
    dv_request = build_authenticated_request(build_request(signers["dv"], chr=dv_chr, car=cvca_chr), signers["cvca"],
                                             outer_car=cvca_chr)
    dv = parse_certificate(build_dv_certificate(
        signers["cvca"], cvca, dv_request, domestic=True, effective_date=day, expiration_date=day + timedelta(days=60),
        document_type="passport"))
    terminal = parse_certificate(build_terminal_certificate(
        signers["dv"], dv, build_request(signers["is"], chr=is_chr, car=dv_chr), effective_date=day,
        expiration_date=day + timedelta(days=20), document_type="passport"))
    new_cvca = parse_certificate(build_cvca_certificate(
        signers["cvca2"], chr=new_chr, effective_date=day, expiration_date=day + timedelta(days=700),
        document_type="passport", terminal_type=terminal_type))
    link = parse_certificate(build_cvca_link_certificate(signers["cvca"], cvca, new_cvca, document_type="passport"))
    return OwnChain(cvca, dv, terminal, new_cvca, link)


def check_own_chain_with_cvc_print(chain: OwnChain, tmp: Path) -> None:
    """Files named exactly after their CHR; each certificate checked with --cvc-dir."""
    trust = tmp / "trust"
    trust.mkdir()
    for cert in (chain.cvca, chain.dv, chain.terminal, chain.new_cvca):
        (trust / cert.chr).write_bytes(cert.encoded)
    for name, cert in (("dv", chain.dv), ("terminal", chain.terminal), ("link", chain.link), ("cvca", chain.cvca)):
        path = tmp / f"{name}.cvcert"
        path.write_bytes(cert.encoded)
        printed = cvc_print(path, trust)
        assert printed.last_line == "certificate verified", f"{name}: {printed.raw}"
        assert_show_matches_cvc_print(path, trust)
    request = tmp / "request.cvreq"
    request.write_bytes(build_request_for_print(chain))
    proc = run("cvc-print", "--csr", request, cwd=tmp)
    lines = [line.strip() for line in proc.stdout.strip().splitlines()]
    assert lines[-1] == "certificate request verified", proc.stdout + proc.stderr
    shown = json.loads(CliRunner().invoke(app, ["cvc", "show", str(request), "--json"]).stdout)
    assert f"CAR: {shown['car']}" in lines and f"CHR: {shown['chr']}" in lines
    assert f"Profile identifier: {shown['profile_identifier']}" in lines and shown["kind"] == "request"
    # our validation agrees
    verify_chain_at(chain.cvca, [chain.dv, chain.terminal], today())
    verify_chain_at(chain.cvca, [chain.link], today())


_REQUEST_SIGNERS: dict[str, SoftwareSigner] = {}


def build_request_for_print(chain: OwnChain) -> bytes:
    curve = chain.cvca.public_key.curve
    spec = curve.name if curve else "rsa2048"
    signer = _REQUEST_SIGNERS.setdefault(spec, SoftwareSigner.generate(spec))
    return build_request(signer, chr=chain.dv.chr[:2] + "ISREQ00001", car=chain.dv.chr)


@pytest.mark.parametrize("spec", ["brainpoolP256r1", "secp256r1", "brainpoolP384r1", "rsa2048"])
def test_own_chain_verified_by_cvc_print_software_keys(spec: str, tmp_path: Path) -> None:
    require_openpace()
    signers: dict[str, Signer] = {n: SoftwareSigner.generate(spec) for n in ("cvca", "dv", "is", "cvca2")}
    check_own_chain_with_cvc_print(build_own_chain(signers, "VN"), tmp_path)


def test_own_at_chain_verified_by_cvc_print(tmp_path: Path) -> None:
    require_openpace()
    signers: dict[str, Signer] = {n: SoftwareSigner.generate("brainpoolP256r1") for n in ("cvca", "dv", "is", "cvca2")}
    check_own_chain_with_cvc_print(build_own_chain(signers, "VN", terminal_type="at"), tmp_path)


@pytest.mark.hsm
@pytest.mark.parametrize("spec", ["brainpoolP256r1", "secp256r1", "brainpoolP384r1", "rsa2048"])
def test_own_chain_verified_by_cvc_print_softhsm_keys(spec: str, tmp_path: Path, keystore) -> None:  # type: ignore[no-untyped-def]
    """Keys generated in SoftHSM2 through the key store; the codec only sees Signers."""
    require_openpace()
    roles = {"cvca": "cvca", "dv": "dvca", "is": "is", "cvca2": "cvca"}
    signers: dict[str, Signer] = {}
    for name, role in roles.items():
        signers[name] = keystore.generate_key(keystore.next_label("passport", role), spec)
    check_own_chain_with_cvc_print(build_own_chain(signers, "VH"), tmp_path)
