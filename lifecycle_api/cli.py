"""`icao-pki client …`: every party's commands against a running lifecycle API.

Every flow end to end, without hand-crafted CMS: ``ds-request`` (Agency: the service
generates the DS key and CSR, the Agency signs the request), ``is-request`` (an IS
certificate, or its renewal authenticated by the current IS key), ``foreign-dv-request``
(a foreign DV's request brought in by the Agency), ``dv-abroad request|export|import``
(our DV certified by a foreign CVCA), ``revoke`` (Art. 17 reasons), ``ceremony
propose|approve`` (two Provider officers), plus ``submit`` (any request type),
``queue``, ``countersign``, ``reject``, ``act``, ``show``, ``list``, ``notices``,
``certificates``, ``certificate`` and ``ds-keys`` (the exact count per DS key).

The organisation's official-use key stays on its own PKCS#11 token (`--key-label`, opened
through the configured key store); the certificate is a file.  Tables by default,
`--json` for scripts; one-line errors and exit 2 on refusals (icao_pki.console).
Mount with ``app.add_typer(lifecycle_api.cli.app, name="client")``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import typer
from rich import box
from rich.table import Column, Table

from cvc.builders import build_authenticated_request, build_request
from cvc.errors import CvcError
from icao_pki.clock import SystemClock
from icao_pki.console import CommandError, JsonOption, out, print_json, read_input_file, reporting
from icao_pki.crl import RevocationReason
from icao_pki.policy import DocumentType
from icao_pki.signer import Signer

from .client import ApiRefusal, PartyClient
from .errors import LifecycleError
from .settings import load_certificate_file

app = typer.Typer(help="Talk to the lifecycle API as one party (Agency, Cơ yếu unit, Provider…).", no_args_is_help=True)
ceremony_app = typer.Typer(help="Key ceremonies (CSCA, CVCA, DVCA): one Provider officer proposes, another approves.",
                           no_args_is_help=True)
dv_abroad_app = typer.Typer(help="Vietnam's DV certified by a foreign CVCA: request, export, import.",
                            no_args_is_help=True)
app.add_typer(ceremony_app, name="ceremony")
app.add_typer(dv_abroad_app, name="dv-abroad")

#: what a command reports in one line (exit 2) instead of a traceback
EXPECTED = (LifecycleError, ApiRefusal, CvcError, httpx.HTTPError)

#: replaced in tests (an ASGI TestClient, a software signer); production uses httpx and the key store
http_factory: Callable[[str], httpx.Client] = lambda url: httpx.Client(base_url=url, timeout=30.0)  # noqa: E731


def _keystore_signer(label: str) -> Signer:
    from icao_pki.embedded import DataDir

    return DataDir.from_env().open_keystore().signer(label)


signer_factory: Callable[[str], Signer] = _keystore_signer

UrlOption = typer.Option("http://127.0.0.1:8000", "--url", envvar="ICAO_PKI_URL", help="Base URL of the lifecycle API.")
TokenOption = typer.Option(..., "--token", envvar="ICAO_PKI_TOKEN", help="Bearer token of your operator.")
OrgOption = typer.Option(..., "--organisation-id", envvar="ICAO_PKI_ORGANISATION_ID", help="Your organisation's id.")
KeyOption = typer.Option(None, "--key-label", envvar="ICAO_PKI_KEY_LABEL",
                         help="PKCS#11 label of your organisation's official-use key.")
CertOption = typer.Option(None, "--certificate", envvar="ICAO_PKI_CERTIFICATE",
                          help="Your organisation's official-use certificate (PEM or DER).")


def _client(url: str, token: str, organisation_id: int, key_label: str | None = None,
            certificate: Path | None = None) -> PartyClient:
    signer = cert = None
    if key_label is not None or certificate is not None:
        if key_label is None or certificate is None:
            raise CommandError("signing needs both --key-label and --certificate")
        read_input_file(certificate)
        cert = load_certificate_file(certificate)[0]
        signer = signer_factory(key_label)
    return PartyClient(http=http_factory(url), token=token, organisation_id=organisation_id, clock=SystemClock(),
                       signer=signer, certificate_der=cert)


def _show_requests(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    table = Table("type", "document", "state", "applicant", "deadline", "updated")
    table.columns.insert(0, Column("id", no_wrap=True))  # copied into countersign / reject: never cut
    for r in rows:
        table.add_row(r["id"], r["request_type"], r.get("document_type") or "", r["state"],
                      str(r["applicant_organisation_id"]), r.get("deadline") or "", r["updated_at"])
    out.print(table)


def _show_request(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(row)
        return
    _show_requests([row], False)
    if row.get("rejection_reason"):
        out.print(f"rejected: {row['rejection_reason']}", markup=False)
    if row.get("result") is not None:
        out.print(json.dumps(row["result"], ensure_ascii=False, indent=2), markup=False)


@app.command()
def submit(
    request_type: str = typer.Argument(..., help="Request type, e.g. ds."),
    payload: str = typer.Option("{}", "--payload", help="JSON object: the request's payload."),
    document_type: str | None = typer.Option(None, "--document-type", help="passport or idcard."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
    key_label: str | None = KeyOption, certificate: Path | None = CertOption, as_json: bool = JsonOption,
) -> None:
    """Sign a request with your organisation's key and submit it."""
    with reporting(*EXPECTED):
        try:
            body = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--payload is not JSON: {exc}") from None
        client = _client(url, token, organisation_id, key_label, certificate)
        _show_request(client.submit(request_type, body, document_type), as_json)


@app.command()
def countersign(
    request_id: str, url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
    key_label: str | None = KeyOption, certificate: Path | None = CertOption, as_json: bool = JsonOption,
) -> None:
    """Countersign a request of your ministry's agency (Cơ yếu unit)."""
    with reporting(*EXPECTED):
        _show_request(_client(url, token, organisation_id, key_label, certificate).countersign(request_id), as_json)


@app.command()
def reject(
    request_id: str, reason: str = typer.Option(..., "--reason", help="Why, for the applicant."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
    key_label: str | None = KeyOption, certificate: Path | None = CertOption, as_json: bool = JsonOption,
) -> None:
    """Reject a request with a signed reason."""
    with reporting(*EXPECTED):
        _show_request(_client(url, token, organisation_id, key_label, certificate).reject(request_id, reason), as_json)


@app.command()
def act(request_id: str, url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
        as_json: bool = JsonOption) -> None:
    """Act on a countersigned request (Provider)."""
    with reporting(*EXPECTED):
        _show_request(_client(url, token, organisation_id).act(request_id), as_json)


@app.command()
def show(request_id: str, url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
         as_json: bool = JsonOption) -> None:
    """One request, its signatures and its result."""
    with reporting(*EXPECTED):
        _show_request(_client(url, token, organisation_id).request(request_id), as_json)


@app.command("list")
def list_requests(url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
                  as_json: bool = JsonOption) -> None:
    """Every request your organisation is a party to."""
    with reporting(*EXPECTED):
        _show_requests(_client(url, token, organisation_id).requests(), as_json)


@app.command()
def queue(url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
          as_json: bool = JsonOption) -> None:
    """What waits for you: countersignatures (Cơ yếu unit) or actions (Provider)."""
    with reporting(*EXPECTED):
        _show_requests(_client(url, token, organisation_id).queue(), as_json)


@app.command()
def notices(url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
            as_json: bool = JsonOption) -> None:
    """Your organisation's notifications."""
    with reporting(*EXPECTED):
        rows = _client(url, token, organisation_id).notifications()
    if as_json:
        print_json(rows)
        return
    table = Table("id", "event", "request", "state", "created")
    for n in rows:
        table.add_row(str(n["id"]), n["event"], n.get("request_id") or "", n["state"], n["created_at"])
    out.print(table)


# --- the certificate flows ---------------------------------------------------------------------

DocumentTypeOption = typer.Option(..., "--document-type", help="passport or idcard.")


def _read_binary(path: Path) -> bytes:
    """A DER file, or the same as base64 text (what the API's JSON carries)."""
    import base64
    import binascii

    data = read_input_file(path)
    text = data.strip()
    if text and all(32 < b < 127 for b in text):
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    return data


def _show_certificates(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    table = Table("id", "role", "document", "format", "serial / CHR", "subject", "valid until", "status")
    for c in rows:
        table.add_row(str(c["certificate_id"]), c["role"], c["document_type"], c["format"],
                      c.get("chr") or str(c.get("serial") or ""), c.get("subject") or "", c["not_after"], c["status"])
    out.print(table)


def _show_flow(row: dict[str, Any], as_json: bool) -> None:
    """A request and, once the Provider has acted (automatically or not), what it produced."""
    if as_json:
        print_json(row)
        return
    _show_requests([row], False)
    result = row.get("result")
    if row.get("rejection_reason"):
        out.print(f"rejected: {row['rejection_reason']}", markup=False)
    if isinstance(result, dict) and "certificate_id" in result and "role" in result:
        _show_certificates([result], False)
    elif result is not None:
        out.print(json.dumps({k: v for k, v in result.items() if k not in ("der", "chain", "cv_request")}
                             if isinstance(result, dict) else result, ensure_ascii=False, indent=2), markup=False)
    elif row["state"] == "submitted":
        out.print("waiting for the Cơ yếu unit's countersignature", markup=False)
    elif row["state"] == "countersigned":
        out.print("countersigned: waiting in the Provider's queue", markup=False)


@app.command("ds-request")
def ds_request(
    document_type: DocumentType = DocumentTypeOption,
    key_spec: str | None = typer.Option(None, "--key-spec", help="DS key, e.g. brainpoolP256r1 (default: the CSCA's)."),
    key_usage_months: int | None = typer.Option(None, "--key-usage-months", help="Private-key usage (≤ decree limit)."),
    validity_months: int | None = typer.Option(None, "--validity-months", help="Certificate validity."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
    key_label: str | None = KeyOption, certificate: Path | None = CertOption, as_json: bool = JsonOption,
) -> None:
    """DS certificate (Agency): the service generates the DS key and CSR in its HSM; you sign the request."""
    with reporting(*EXPECTED):
        client = _client(url, token, organisation_id, key_label, certificate)
        _show_flow(client.request_ds_certificate(document_type.value, key_spec, key_usage_months=key_usage_months,
                                                 validity_months=validity_months), as_json)


@app.command("is-request")
def is_request(
    document_type: DocumentType = DocumentTypeOption,
    cv_request: Path | None = typer.Option(None, "--cv-request", help="A CV request file (DER) built elsewhere."),
    terminal_key_label: str | None = typer.Option(
        None, "--terminal-key-label", help="PKCS#11 label of the new terminal (IS) key: the request is built here."),
    chr: str | None = typer.Option(None, "--chr", help="Holder reference of the new IS certificate, e.g. VNISNB00002."),
    car: str | None = typer.Option(None, "--car", help="The DV that should issue it (its CHR)."),
    renew_key_label: str | None = typer.Option(
        None, "--renew-with-key-label", help="Renewal: PKCS#11 label of your CURRENT IS key (outer signature)."),
    current_chr: str | None = typer.Option(None, "--current-chr", help="Renewal: CHR of your current IS certificate."),
    validity_days: int | None = typer.Option(None, "--validity-days", help="IS validity (≤ 1 month)."),
    out_file: Path | None = typer.Option(None, "--out", help="Also write the CV request submitted (DER)."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
    key_label: str | None = KeyOption, certificate: Path | None = CertOption, as_json: bool = JsonOption,
) -> None:
    """IS certificate or renewal (Agency, IS operator): a CV request, authenticated by the current IS key to renew."""
    with reporting(*EXPECTED):
        if cv_request is not None:
            if terminal_key_label or renew_key_label:
                raise CommandError("give either --cv-request or --terminal-key-label, not both")
            der = _read_binary(cv_request)
        else:
            if not (terminal_key_label and chr and car):
                raise CommandError("building the request needs --terminal-key-label, --chr and --car "
                                   "(or give --cv-request)")
            der = build_request(signer_factory(terminal_key_label), chr=chr, car=car)
            if renew_key_label or current_chr:
                if not (renew_key_label and current_chr):
                    raise CommandError("a renewal needs both --renew-with-key-label and --current-chr")
                der = build_authenticated_request(der, signer_factory(renew_key_label), outer_car=current_chr)
        if out_file is not None:
            out_file.write_bytes(der)
        client = _client(url, token, organisation_id, key_label, certificate)
        _show_flow(client.request_is_certificate(der, document_type.value, validity_days), as_json)


@app.command("is-key-request")
def is_key_request(
    document_type: DocumentType = DocumentTypeOption,
    car: str | None = typer.Option(None, "--car", help="The DV that should issue it (default: our DV valid now)."),
    validity_days: int | None = typer.Option(None, "--validity-days", help="IS validity (≤ 1 month)."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
    key_label: str | None = KeyOption, certificate: Path | None = CertOption, as_json: bool = JsonOption,
) -> None:
    """IS certificate (IS operator, Agency) for a key the service generates and keeps in its HSM, so that
    the schedules renew it before expiry without a human; you sign the request."""
    with reporting(*EXPECTED):
        client = _client(url, token, organisation_id, key_label, certificate)
        _show_flow(client.request_is_certificate_in_hsm(document_type.value, validity_days, car), as_json)


@app.command("foreign-dv-request")
def foreign_dv_request(
    cv_request: Path = typer.Option(..., "--cv-request", help="The foreign DV's CV request (DER), authenticated by "
                                                                "its state's CVCA (initial) or by the DV's "
                                                                "current certificate from us (successive)."),
    foreign_state: int = typer.Option(..., "--foreign-state", help="Organisation id of the foreign state."),
    document_type: DocumentType = typer.Option(DocumentType.PASSPORT, "--document-type", help="passport or idcard."),
    validity_days: int | None = typer.Option(None, "--validity-days", help="Foreign-DV validity (≤ decree limit)."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
    key_label: str | None = KeyOption, certificate: Path | None = CertOption, as_json: bool = JsonOption,
) -> None:
    """Bring in a foreign DV's request (Agency): our CVCA certifies it once countersigned and acted on."""
    with reporting(*EXPECTED):
        client = _client(url, token, organisation_id, key_label, certificate)
        _show_flow(client.request_foreign_dv_certificate(_read_binary(cv_request), foreign_state,
                                                         document_type.value, validity_days), as_json)


@dv_abroad_app.command("request")
def dv_abroad_request(
    foreign_state: int = typer.Option(..., "--foreign-state", help="Organisation id of the foreign state."),
    document_type: DocumentType = typer.Option(DocumentType.PASSPORT, "--document-type", help="passport or idcard."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
    key_label: str | None = KeyOption, certificate: Path | None = CertOption, as_json: bool = JsonOption,
) -> None:
    """Ask for our DV to be certified by a foreign CVCA (Agency); the Provider generates key and CV request."""
    with reporting(*EXPECTED):
        client = _client(url, token, organisation_id, key_label, certificate)
        _show_flow(client.request_dv_abroad(foreign_state, document_type.value), as_json)


@dv_abroad_app.command("export")
def dv_abroad_export(
    request_id: str,
    out_file: Path = typer.Option(..., "--out", help="Where to write the CV request (DER) for the foreign state."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption, as_json: bool = JsonOption,
) -> None:
    """Write the CV request of a completed dv-abroad request, to send to the foreign state."""
    with reporting(*EXPECTED):
        der = _client(url, token, organisation_id).exported_cv_request(request_id)
        out_file.write_bytes(der)
    if as_json:
        print_json({"request_id": request_id, "file": str(out_file), "bytes": len(der)})
    else:
        out.print(f"wrote {len(der)} bytes to {out_file}", markup=False)


@dv_abroad_app.command("import")
def dv_abroad_import(
    request_id: str,
    foreign_certificate: Path = typer.Option(..., "--foreign-certificate",
                                             help="The DV certificate the foreign CVCA issued (DER)."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption, as_json: bool = JsonOption,
) -> None:
    """Install the foreign CVCA's certificate for our DV (Provider): verified against that state's CVCA."""
    with reporting(*EXPECTED):
        row = _client(url, token, organisation_id).import_foreign_certificate(request_id,
                                                                              _read_binary(foreign_certificate))
    if as_json:
        print_json(row)
    else:
        _show_certificates([row], False)


@app.command()
def revoke(
    certificate_id: int,
    reason: RevocationReason = typer.Option(..., "--reason", help="Art. 17 reason."),
    invalidity_date: str | None = typer.Option(None, "--invalidity-date", help="ISO date-time the key became invalid."),
    document_type: DocumentType | None = typer.Option(None, "--document-type", help="passport or idcard."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
    key_label: str | None = KeyOption, certificate: Path | None = CertOption, as_json: bool = JsonOption,
) -> None:
    """Ask for a certificate's revocation (Art. 17 reason; Art. 18 decides who may ask)."""
    with reporting(*EXPECTED):
        client = _client(url, token, organisation_id, key_label, certificate)
        _show_flow(client.request_revocation(certificate_id, reason.value, invalidity_date,
                                             document_type.value if document_type else None), as_json)


@ceremony_app.command("propose")
def ceremony_propose(
    kind: str = typer.Option(..., "--kind", help="csca, cvca or dvca."),
    document_type: DocumentType = DocumentTypeOption,
    key_spec: str | None = typer.Option(None, "--key-spec", help="e.g. brainpoolP384r1, rsa3072."),
    validity_months: int | None = typer.Option(None, "--validity-months"),
    key_usage_months: int | None = typer.Option(None, "--key-usage-months"),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption, as_json: bool = JsonOption,
) -> None:
    """Propose a key ceremony (Provider officer); the decree's limits are checked at once."""
    with reporting(*EXPECTED):
        _show_flow(_client(url, token, organisation_id).propose_ceremony(
            kind, document_type.value, key_spec=key_spec, validity_months=validity_months,
            key_usage_months=key_usage_months), as_json)


@ceremony_app.command("approve")
def ceremony_approve(request_id: str, url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
                     as_json: bool = JsonOption) -> None:
    """Approve a ceremony (a DIFFERENT Provider officer): the key is generated in the HSM and signed."""
    with reporting(*EXPECTED):
        _show_flow(_client(url, token, organisation_id).approve_ceremony(request_id), as_json)


@app.command("certificates")
def list_certificates(url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
                      as_json: bool = JsonOption) -> None:
    """Certificates you hold (the Provider: all)."""
    with reporting(*EXPECTED):
        rows = _client(url, token, organisation_id).certificates()
    _show_certificates(rows, as_json)


@app.command("ds-keys")
def ds_keys(
    document_type: DocumentType = typer.Argument(..., help="passport or idcard."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption, as_json: bool = JsonOption,
) -> None:
    """DS keys and their exact counts: documents signed, slots reserved but unused, what is left."""
    with reporting(*EXPECTED):
        report = _client(url, token, organisation_id).ds_keys(document_type.value)
    if as_json:
        print_json(report)
        return
    limits = {k["max_signatures"] for k in report["keys"]}
    one_limit = len(limits) == 1 and None not in limits
    title = f"DS keys, {report['document_type']}, at {report['at'][:19]}Z"
    if one_limit:
        title += f": {limits.pop():,} documents per key ({report['article']})"
    columns = [Column("key", no_wrap=True), Column("state", min_width=9), Column("signed", justify="right", min_width=7),
               Column("reserved", justify="right"),
               *([] if one_limit else [Column("limit", justify="right", min_width=7)]),
               Column("left", justify="right", min_width=7), Column("until", no_wrap=True)]  # the key id is in --json
    table = Table(*columns, title=title, box=box.SIMPLE_HEAD)
    for k in report["keys"]:
        left = "-" if k["remaining"] is None else f"{k['remaining']:,}"
        limit = [] if one_limit else ["-" if k["max_signatures"] is None else f"{k['max_signatures']:,}"]
        mark = " *" if k["signing_now"] else ("" if k["within_limit"] else " !")
        table.add_row(k["key_label"] + mark, k["state"], f"{k['signed']:,}", f"{k['reserved_unused']:,}",
                      *limit, left, (k["usage_not_after"] or "")[:10])
    out.print(table)
    out.print("* signs now.  reserved: slots held by a running instance (given back when it stops) or wasted by a "
              "crash; they count against the limit", markup=False)
    if any(not k["within_limit"] for k in report["keys"]):
        out.print("! over the limit", markup=False)
    if not any(k["signing_now"] for k in report["keys"]):
        out.print(f"no DS key can sign {report['document_type']} SODs now", markup=False)


@app.command("certificate")
def show_certificate(
    certificate_id: int,
    out_file: Path | None = typer.Option(None, "--out", help="Write the certificate (DER) to this file."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption, as_json: bool = JsonOption,
) -> None:
    """One certificate you hold; --out saves its DER."""
    import base64

    with reporting(*EXPECTED):
        row = _client(url, token, organisation_id).certificate(certificate_id)
        if out_file is not None:
            out_file.write_bytes(base64.b64decode(row["der"]))
    if as_json:
        print_json(row)
    else:
        _show_certificates([row], False)
