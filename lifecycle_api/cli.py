"""`icao-pki client …`: every party's commands against a running lifecycle API.

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
from rich.table import Table

from icao_pki.clock import SystemClock
from icao_pki.console import CommandError, JsonOption, out, print_json, read_input_file, reporting
from icao_pki.signer import Signer

from .client import ApiRefusal, PartyClient
from .errors import LifecycleError
from .settings import load_certificate_file

app = typer.Typer(help="Talk to the lifecycle API as one party (Agency, Cơ yếu unit, Provider…).", no_args_is_help=True)

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
    table = Table("id", "type", "document", "state", "applicant", "deadline", "updated")
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
    with reporting(LifecycleError, ApiRefusal):
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
    with reporting(LifecycleError, ApiRefusal):
        _show_request(_client(url, token, organisation_id, key_label, certificate).countersign(request_id), as_json)


@app.command()
def reject(
    request_id: str, reason: str = typer.Option(..., "--reason", help="Why, for the applicant."),
    url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
    key_label: str | None = KeyOption, certificate: Path | None = CertOption, as_json: bool = JsonOption,
) -> None:
    """Reject a request with a signed reason."""
    with reporting(LifecycleError, ApiRefusal):
        _show_request(_client(url, token, organisation_id, key_label, certificate).reject(request_id, reason), as_json)


@app.command()
def act(request_id: str, url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
        as_json: bool = JsonOption) -> None:
    """Act on a countersigned request (Provider)."""
    with reporting(LifecycleError, ApiRefusal):
        _show_request(_client(url, token, organisation_id).act(request_id), as_json)


@app.command()
def show(request_id: str, url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
         as_json: bool = JsonOption) -> None:
    """One request, its signatures and its result."""
    with reporting(LifecycleError, ApiRefusal):
        _show_request(_client(url, token, organisation_id).request(request_id), as_json)


@app.command("list")
def list_requests(url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
                  as_json: bool = JsonOption) -> None:
    """Every request your organisation is a party to."""
    with reporting(LifecycleError, ApiRefusal):
        _show_requests(_client(url, token, organisation_id).requests(), as_json)


@app.command()
def queue(url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
          as_json: bool = JsonOption) -> None:
    """What waits for you: countersignatures (Cơ yếu unit) or actions (Provider)."""
    with reporting(LifecycleError, ApiRefusal):
        _show_requests(_client(url, token, organisation_id).queue(), as_json)


@app.command()
def notices(url: str = UrlOption, token: str = TokenOption, organisation_id: int = OrgOption,
            as_json: bool = JsonOption) -> None:
    """Your organisation's notifications."""
    with reporting(LifecycleError, ApiRefusal):
        rows = _client(url, token, organisation_id).notifications()
    if as_json:
        print_json(rows)
        return
    table = Table("id", "event", "request", "state", "created")
    for n in rows:
        table.add_row(str(n["id"]), n["event"], n.get("request_id") or "", n["state"], n["created_at"])
    out.print(table)
